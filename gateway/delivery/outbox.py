"""The file outbox: the report as FHIR JSON, HL7 ER7, PNG and PDF in one folder,
named by SOP Instance UID. The default destination, so the gateway is useful with
no EHR at all, and a drop folder for systems that collect files."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from gateway.delivery.base import Artefacts, DeliveryError, SendInterrupted, safe_file_stem
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.delivery.hl7 import build_oru, control_id, encode
from gateway.durable import write_files
from gateway.processes import START_ALLOWANCE_S, kill_pool, new_process_pool
from gateway.processing.package import ReportPackage
from gateway.routing import FileDestination

_IMAGE_SUFFIXES = {
    "image/png": ".png",
    "png": ".png",
    "image/jpeg": ".jpg",
    "jpeg": ".jpg",
    "jpg": ".jpg",
}
_CLOSE_SLICE_S = 0.5  # how often a write in progress checks whether its sender was closed


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
    """Writes each artefact atomically; a rewrite (resend, correction) replaces it whole.

    The writes run in a helper process of this destination's own, within the
    destination's `timeout_s`: a write stuck in the kernel (a network file system that
    hangs) cannot be interrupted from a thread, so past the deadline that process is
    killed and replaced, and the delivery is retried by its policy. The sweeping thread
    and every other destination go on meanwhile."""

    def __init__(self, destination: FileDestination, name: str):
        self.destination = destination
        self.name = name
        self._writer: ProcessPoolExecutor | None = None
        self._closed = threading.Event()

    def send(self, package: ReportPackage, artefacts: Artefacts) -> str:
        directory = Path(self.destination.directory)
        stem = safe_file_stem(package.sop_instance_uid)
        timeout_s = self.destination.timeout_s
        writer = self._started_writer()
        files = {f"{stem}{suffix}": data for suffix, data in artefacts.items()}
        try:
            write = writer.submit(write_files, directory, files)
        except RuntimeError:  # shut down by a close a moment before, or broken (a subclass)
            self._stop_writer()
            if self._closed.is_set():
                raise SendInterrupted("the outbox was closed before the write") from None
            raise DeliveryError("the outbox's writing process died; trying again") from None
        try:
            self._wait_unless_closed(write, timeout_s)
        except SendInterrupted:
            self._stop_writer()  # a writer started as the close came in
            raise
        except TimeoutError:
            self._stop_writer()
            raise DeliveryError(
                f"writing the files took longer than {timeout_s:g} s (timeout_s): "
                "the writing process was stopped; trying again"
            ) from None
        except BrokenProcessPool:
            self._stop_writer()
            if self._closed.is_set():
                raise SendInterrupted("the outbox was closed during the write") from None
            raise DeliveryError("the outbox's writing process died; trying again") from None
        return f"wrote {', '.join(stem + suffix for suffix in artefacts)} to {directory}"

    def close(self) -> None:
        """Stop the writing process, the one thing held between sends, without waiting for
        a write in progress: a gateway stopping, or a reload removing this destination,
        must not wait on a write hung in the kernel (a stalled network share). That write's
        delivery is handed back (SendInterrupted); the file being written is never
        renamed in, so no partial file is left where a collector looks."""
        self._closed.set()
        self._stop_writer()

    def _wait_unless_closed(self, write: Future, timeout_s: float) -> None:
        """The write's result within `timeout_s`, waited for in slices so that a close from
        another thread ends the wait at once, even where the killed writer cannot exit
        until the kernel gives its write up."""
        deadline = time.monotonic() + timeout_s
        while not self._closed.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                write.result(timeout=min(_CLOSE_SLICE_S, left))
                return
            except TimeoutError:
                continue
        raise SendInterrupted("the outbox was closed during the write")

    def _started_writer(self) -> ProcessPoolExecutor:
        """The writing process, started (spawned and imported) within an allowance of its
        own, START_ALLOWANCE_S: the start is not the write that timeout_s limits."""
        if self._closed.is_set():
            raise SendInterrupted("the outbox was closed")
        if self._writer is None:
            writer = new_process_pool(1, preload="gateway.durable")  # light: no formats
            try:
                writer.submit(os.getpid).result(timeout=START_ALLOWANCE_S)
            except (TimeoutError, BrokenProcessPool):
                kill_pool(writer)
                writer.shutdown(wait=False)
                raise DeliveryError(
                    f"the outbox's writing process did not start within {START_ALLOWANCE_S:g} s"
                ) from None
            self._writer = writer
        return self._writer

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            kill_pool(writer)
            writer.shutdown(wait=False)


def _image(package: ReportPackage) -> dict[str, bytes]:
    """The rendered PNG; for a scanned ECG without a waveform, the received image."""
    if package.png is not None:
        return {".png": package.png}
    suffix = _IMAGE_SUFFIXES.get((package.source_image_type or "").lower())
    if package.source_image is not None and suffix:
        return {suffix: package.source_image}
    return {}
