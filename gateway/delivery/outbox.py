"""The file outbox: the report as FHIR JSON, HL7 ER7, PNG and PDF in one folder,
named by SOP Instance UID. The default destination, so the gateway is useful with
no EHR at all, and a drop folder for systems that collect files."""

from __future__ import annotations

from pathlib import Path

from gateway.delivery.base import Artefacts, safe_file_stem
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.delivery.hl7 import build_oru, control_id, encode
from gateway.durable import fsync_directory, write_atomic
from gateway.processing.package import ReportPackage
from gateway.routing import FileDestination

_IMAGE_SUFFIXES = {
    "image/png": ".png",
    "png": ".png",
    "image/jpeg": ".jpg",
    "jpeg": ".jpg",
    "jpg": ".jpg",
}


def prepare(package: ReportPackage, destination: FileDestination, name: str) -> Artefacts:
    """File suffix -> content. Images first and messages last, so a folder watcher that
    keys on the message file finds the images already in place."""
    formats = set(destination.formats)
    artefacts: Artefacts = {}
    if "png" in formats:
        artefacts.update(_image(package))
    if "pdf" in formats and package.pdf is not None:
        artefacts[".pdf"] = package.pdf
    if "fhir" in formats:
        artefacts[".fhir.json"] = bundle_json(build_bundle(package, destination.fhir))
    if "hl7" in formats:
        artefacts[".hl7"] = encode(build_oru(package, destination.hl7, control_id(package, name)))
    return artefacts


class FileSender:
    """Writes each artefact atomically; a rewrite (resend, correction) replaces it whole."""

    def __init__(self, destination: FileDestination, name: str):
        self.destination = destination
        self.name = name

    def send(self, package: ReportPackage, artefacts: Artefacts) -> str:
        directory = Path(self.destination.directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = safe_file_stem(package.sop_instance_uid)
        for suffix, data in artefacts.items():
            write_atomic(directory / f"{stem}{suffix}", data)
        fsync_directory(directory)
        return f"wrote {', '.join(stem + suffix for suffix in artefacts)} to {directory}"

    def close(self) -> None:
        """Nothing held open between sends."""


def _image(package: ReportPackage) -> dict[str, bytes]:
    """The rendered PNG; for a scanned ECG without a waveform, the received image."""
    if package.png is not None:
        return {".png": package.png}
    suffix = _IMAGE_SUFFIXES.get((package.source_image_type or "").lower())
    if package.source_image is not None and suffix:
        return {suffix: package.source_image}
    return {}
