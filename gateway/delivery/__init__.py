"""Delivery of one report package to one destination, whatever its type.

Each destination type has a `prepare` function (package -> the artefacts it sends: pure
CPU work, so it can run in another process) and a sender class with the same shape
(`send(package, artefacts)` returning a receipt or raising DeliveryError, and `close()`);
`open_sender` picks the class by the destination's `type`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from gateway.delivery import dicom, fhir, hl7, outbox
from gateway.delivery.base import Artefacts, DeliveryError, Sender, content_version
from gateway.delivery.dicom import DicomSender
from gateway.delivery.fhir_client import FhirSender
from gateway.delivery.hl7 import Hl7Sender
from gateway.delivery.outbox import FileSender
from gateway.processing.package import ReportPackage
from gateway.processing.revision import revised_package
from gateway.routing import AnyDestination
from model.report import Report

SENDER_TYPES: dict[str, Callable[[AnyDestination, str], Sender]] = {
    "fhir": FhirSender,
    "hl7": Hl7Sender,
    "dicom": DicomSender,
    "file": FileSender,
}
PREPARERS: dict[str, Callable[[ReportPackage, AnyDestination, str], Artefacts]] = {
    "fhir": fhir.prepare,
    "hl7": hl7.prepare,
    "dicom": dicom.prepare,
    "file": outbox.prepare,
}


def open_sender(name: str, destination: AnyDestination) -> Sender:
    return SENDER_TYPES[destination.type](destination, name)


def prepare(name: str, destination: AnyDestination, package: ReportPackage) -> Artefacts:
    """What goes on the wire; refused (for good) when a part is over max_message_mb, as
    receivers choke on, or silently drop, messages of tens of megabytes."""
    artefacts = PREPARERS[destination.type](package, destination, name)
    limit_mb = destination.max_message_mb
    for part, data in artefacts.items():
        size_mb = len(data) / 1e6
        if size_mb > limit_mb:
            raise DeliveryError(
                f"the {part} is {size_mb:.1f} MB, over the destination's max_message_mb "
                f"of {limit_mb:g}",
                permanent=True,
            )
    return artefacts


def load_and_prepare(
    name: str,
    destination: AnyDestination,
    report_dir: Path,
    report_json: str | None = None,
    replaces: tuple[int, str | None] | None = None,
) -> tuple[ReportPackage, Artefacts]:
    """A saved package and its artefacts for one destination: what the delivery sweeper
    has a formatting process do, so the server process only sends. `report_json`: a
    later version of the report (a physician's), sent in place of the saved one;
    `replaces`: the version sent there before it and that version's report (None for
    version 1, the package's own)."""
    saved = load_package(report_dir)
    package = saved
    if report_json is not None:
        package = revised_package(saved, Report.model_validate_json(report_json))
    if replaces is not None:
        version, earlier_json = replaces
        earlier = saved
        if version > 1 and earlier_json is not None:
            earlier = dataclasses.replace(saved, report=Report.model_validate_json(earlier_json))
        package = dataclasses.replace(package, replaces=content_version(earlier))
    return package, prepare(name, destination, package)


def load_package(report_dir: Path) -> ReportPackage:
    try:
        return ReportPackage.load(report_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise DeliveryError(
            f"cannot read the report package: {type(exc).__name__}: "
            f"{getattr(exc, 'strerror', None) or 'unreadable'}",
            permanent=True,
        ) from None


def deliver_once(package: ReportPackage, name: str, destination: AnyDestination) -> str:
    """One delivery on a connection of its own, for tools and tests."""
    sender = open_sender(name, destination)
    try:
        return sender.send(package, prepare(name, destination, package))
    finally:
        sender.close()


__all__ = [
    "PREPARERS",
    "SENDER_TYPES",
    "AnyDestination",
    "Artefacts",
    "DeliveryError",
    "Sender",
    "deliver_once",
    "load_and_prepare",
    "open_sender",
    "prepare",
]
