"""Delivery of one report package to one destination, whatever its type.

Each destination type has a sender class with the same shape (`send(package)`
returning a receipt or raising DeliveryError, and `close()`); `open_sender`
picks it by the destination's `type`.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.deliver.base import DeliveryError, Sender
from gateway.deliver.fhir import FhirSender
from gateway.deliver.file import FileSender
from gateway.deliver.hl7 import Hl7Sender
from gateway.package import ReportPackage
from gateway.routing import FhirDestination, FileDestination, Hl7Destination

AnyDestination = FhirDestination | Hl7Destination | FileDestination

SENDER_TYPES: dict[str, Callable[[AnyDestination, str], Sender]] = {
    "fhir": FhirSender,
    "hl7": Hl7Sender,
    "file": FileSender,
}


def open_sender(name: str, destination: AnyDestination) -> Sender:
    return SENDER_TYPES[destination.type](destination, name)


def send(package: ReportPackage, name: str, destination: AnyDestination) -> str:
    """One delivery on a connection of its own, for tools and tests."""
    sender = open_sender(name, destination)
    try:
        return sender.send(package)
    finally:
        sender.close()


__all__ = ["SENDER_TYPES", "DeliveryError", "Sender", "open_sender", "send"]
