"""Accepting one ECG file from a watched folder or an upload, with the C-STORE promise:
success only once the file is fsync'd in the spool AND its job is committed.

A DICOM file goes through exactly the C-STORE checks (`Intake.accept`) under its own SOP
Instance UID. Any other file is decoded with `model.load` before its job is committed, so
a file nobody can read is refused at the door (the folder moves it to error/, the upload
answers 422) instead of failing later as a job; its UID is derived from its content
(`file_uid`), so the same file dropped or pushed again is a duplicate.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom

import model
from gateway.intake.accept import (
    CANNOT_UNDERSTAND,
    WAVEFORM,
    HeaderFacts,
    Intake,
    Outcome,
    ReceivedObject,
    checked_facts,
)
from gateway.routing import key_for_patient
from gateway.store import StoreError
from model.errors import EcgDecodeError

# Namespace of the UUIDs (RFC 4122 version 5) behind the 2.25 UIDs of vendor files.
_FILE_UID_NAMESPACE = uuid.UUID("5f0c7a52-3b8e-4f4e-9d0f-6f2b1c1e7a10")
_DICM_OFFSET = 128
# File meta group length element (0002,0000) UL, explicit VR: tag, VR, length, value.
_META_LENGTH_ELEMENT_BYTES = 12


@dataclass(frozen=True)
class ReceivedFile:
    """A file's bytes, the source name routes match on, and where it came from (a folder
    or a client address: logged and kept with the job; never patient data)."""

    data: bytes
    source: str
    peer: str
    format: str = "auto"  # gateway.config.FileFormat


def file_uid(content_sha256: str) -> str:
    """A DICOM UID for a file that carries none: 2.25 and a name-based UUID of its content
    (PS3.5 B.2), the same for the same bytes on every node and after every restart."""
    return f"2.25.{uuid.uuid5(_FILE_UID_NAMESPACE, content_sha256).int}"


def is_dicom_file(data: bytes) -> bool:
    """A DICOM Part 10 file: 'DICM' after the 128-byte preamble."""
    return data[_DICM_OFFSET : _DICM_OFFSET + 4] == b"DICM"


def accept_file(intake: Intake, received: ReceivedFile) -> Outcome:
    """Success (a new job, or the earlier one for a duplicate), OUT_OF_RESOURCES (try again
    later: nothing was kept), or a refusal naming what is wrong with the file."""
    if is_dicom_file(received.data):
        if received.format not in ("auto", "dicom"):
            return _wrong_format(intake, received, "DICOM")
        obj = _received_object(received)
        if isinstance(obj, Outcome):
            sha = hashlib.sha256(received.data).hexdigest()
            return intake.reject(f"{received.peer} sha256={sha[:12]}", obj)
        return intake.accept(obj)
    if received.format == "dicom":
        return _wrong_format(intake, received, "not DICOM")
    return _accept_vendor_file(intake, received)


def _received_object(received: ReceivedFile) -> ReceivedObject | Outcome:
    """The file as if it had come by C-STORE: its SOP Class and Instance UIDs from the
    dataset, and the dataset's offset after the file meta, so its content hash equals
    that of the same object received over the network (one job for both)."""
    try:
        ds = pydicom.dcmread(BytesIO(received.data), stop_before_pixels=True)
        sop_class = str(ds.get("SOPClassUID", ""))
        sop_instance = str(ds.get("SOPInstanceUID", ""))
        meta_length = ds.file_meta.get("FileMetaInformationGroupLength")
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on garbage
        return Outcome(CANNOT_UNDERSTAND, "undecodable", f"cannot decode: {type(exc).__name__}")
    if not sop_class or not sop_instance:
        return Outcome(CANNOT_UNDERSTAND, "undecodable", "no SOP Class UID or SOP Instance UID")
    offset = _DICM_OFFSET + 4 + _META_LENGTH_ELEMENT_BYTES + int(meta_length or 0)
    return ReceivedObject(
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        file_bytes=received.data,
        dataset_offset=min(offset, len(received.data)) if meta_length else 0,
        calling_ae="",
        called_ae="",
        peer=received.peer,
        source=received.source,
    )


def _accept_vendor_file(intake: Intake, received: ReceivedFile) -> Outcome:
    sha = hashlib.sha256(received.data).hexdigest()
    uid = file_uid(sha)
    label = f"{uid} sha256={sha[:12]}"
    obj = ReceivedObject("", uid, received.data, 0, "", "", received.peer, received.source)
    earlier = intake.received_before(obj, sha, label)
    if earlier is not None:
        return earlier
    stored = intake.spool(f"{uid}.{sha[:16]}.ecg", received.data)
    if isinstance(stored, Outcome):
        return intake.reject(label, stored)
    header = _decoded_header(stored, uid, received.format)
    if isinstance(header, Outcome):
        _remove_unless_queued(intake, stored, uid, sha)
        return intake.reject(label, header)
    return intake.enqueue(obj, sha, stored, label, header, WAVEFORM)


def _remove_unless_queued(intake: Intake, stored: Path, uid: str, sha: str) -> None:
    """Remove a refused file's spool copy, unless the same bytes were meanwhile accepted by
    another folder or the upload (one spool file for both): then it is that job's input."""
    try:
        if intake.store.find_job(uid, sha) is None:
            stored.unlink(missing_ok=True)
    except StoreError:
        pass  # cannot tell: an unused spool file is harmless, a missing job input is not


def _decoded_header(path: Path, uid: str, wanted_format: str) -> HeaderFacts | Outcome:
    """The job row's facts from the decoded file, or why it cannot be a job: decoding now
    costs milliseconds and keeps an unreadable file in the sender's hands (error/, 422)."""
    try:
        ecg = model.load(path)
    except EcgDecodeError as exc:
        return Outcome(CANNOT_UNDERSTAND, "undecodable", f"cannot decode: {exc.reason}")
    except Exception as exc:  # noqa: BLE001 - a decoder's bug: the file is kept, not lost
        return Outcome(CANNOT_UNDERSTAND, "undecodable", f"decoder failed: {type(exc).__name__}")
    meta = ecg.metadata
    if wanted_format != "auto" and meta.source_format != wanted_format:
        return Outcome(
            CANNOT_UNDERSTAND,
            "wrong-format",
            f"expected {wanted_format}, the file is {meta.source_format}",
        )
    return checked_facts(
        HeaderFacts(
            modality=meta.modality or "",
            institution=meta.institution_name or "",
            station=meta.station_name or "",
            patient_key=key_for_patient(meta.patient_id, meta.patient_id_issuer, uid),
            patient_id=meta.patient_id or "",
            patient_id_issuer=meta.patient_id_issuer or "",
            study_uid=meta.study_instance_uid or "",
            accession_number=meta.accession_number or "",
            patient_name=meta.patient_name or "",
        )
    )


def _wrong_format(intake: Intake, received: ReceivedFile, found: str) -> Outcome:
    sha = hashlib.sha256(received.data).hexdigest()
    return intake.reject(
        f"{received.peer} sha256={sha[:12]}",
        Outcome(
            CANNOT_UNDERSTAND, "wrong-format", f"expected {received.format}, the file is {found}"
        ),
    )
