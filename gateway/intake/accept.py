"""Accepting one received object: check it, make it durable, queue its job, pick a status.

The SCP's C-STORE handler calls `Intake.accept`; success (0x0000) is returned only after
the object is fsync'd in the spool AND its job is committed to the store (or, with a
store that keeps objects itself, PostgreSQL, after the one commit of both). Every other
outcome is a named rejection, logged with the SOP Instance UID and a short content hash
(never patient data) and counted by reason.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
import pypdfium2
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from gateway import metrics as m
from gateway.audit import Auditor, Instance
from gateway.durable import write_durably
from gateway.intake.spool import free_bytes, is_valid_uid, spool_name
from gateway.metrics import Metrics
from gateway.routing import key_for_patient
from gateway.store import NewJob, Store, StoreError
from model.decode.dicom_metadata import dicom_text

log = logging.getLogger(__name__)

# C-STORE statuses (PS3.4 B.2.3).
SUCCESS = 0x0000
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000

_UNDEFINED_LENGTH = 0xFFFFFFFF
# PDFium may not be called from two threads at once, and each association has its own.
_PDFIUM_LOCK = threading.Lock()

# What each accepted storage SOP class is to the pipeline.
WAVEFORM = "ecg-waveform"
SECONDARY_CAPTURE = "secondary-capture"
PDF = "pdf"
KIND_BY_SOP_CLASS: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.9.1.1": WAVEFORM,  # 12-lead ECG Waveform
    "1.2.840.10008.5.1.4.1.1.9.1.2": WAVEFORM,  # General ECG Waveform
    "1.2.840.10008.5.1.4.1.1.9.1.3": WAVEFORM,  # Ambulatory ECG Waveform
    "1.2.840.10008.5.1.4.1.1.9.2.1": WAVEFORM,  # Hemodynamic Waveform
    "1.2.840.10008.5.1.4.1.1.7": SECONDARY_CAPTURE,  # Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.1": SECONDARY_CAPTURE,  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2": SECONDARY_CAPTURE,  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3": SECONDARY_CAPTURE,  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4": SECONDARY_CAPTURE,  # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.104.1": PDF,  # Encapsulated PDF
}


@dataclass(frozen=True)
class ReceivedObject:
    """One received object: file-format bytes plus who sent it (never defaulted: a job
    must say where its object came from). A C-STORE request, or a file from a watched
    folder or an upload (gateway/intake/files.py: no AE titles, a source name instead)."""

    sop_class_uid: str
    sop_instance_uid: str
    file_bytes: bytes
    dataset_offset: int
    calling_ae: str
    called_ae: str
    peer: str
    source: str = ""  # a watched folder's or the upload endpoint's name; none for C-STORE

    @property
    def content_sha256(self) -> str:
        """Hash of the dataset as sent (file meta excluded: it is ours, not the sender's)."""
        return hashlib.sha256(memoryview(self.file_bytes)[self.dataset_offset :]).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """The status for the peer; `reason` is the counter slug, `comment` the ErrorComment;
    `detail` for the log only (a store's address, a spool path: not for the network); on
    success, the job that holds the object (a new one, or the earlier one for a duplicate)."""

    status: int
    reason: str | None = None
    comment: str | None = None
    job_id: int | None = None
    duplicate: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Intake:
    """Where accepted objects go: the spool and the store; `on_job` hears each new job
    (the workers start on it at once)."""

    store: Store
    spool_dir: Path
    metrics: Metrics
    min_free_bytes: int = 0
    on_job: Callable[[], None] = lambda: None
    audit: Auditor | None = None  # one ATNA record per object acknowledged
    # The priority of the order an object is for, and its head start in the work queue
    # (gateway.processing.order_match.intake_priority); None: every job is routine.
    prioritise: Callable[[HeaderFacts], tuple[str, float]] | None = None

    def accept(self, obj: ReceivedObject) -> Outcome:
        sha = obj.content_sha256
        label = f"{obj.sop_instance_uid} sha256={sha[:12]}"
        earlier = self.received_before(obj, sha, label)
        if earlier is not None:
            return earlier
        checked = check_object(obj)
        if isinstance(checked, Outcome):  # refused before anything is written
            return self.reject(label, checked)
        stored = self.spool(spool_name(obj.sop_instance_uid, sha), obj.file_bytes)
        if isinstance(stored, Outcome):
            return self.reject(label, stored)
        return self.enqueue(obj, sha, stored, label, checked, KIND_BY_SOP_CLASS[obj.sop_class_uid])

    def received_before(self, obj: ReceivedObject, sha: str, label: str) -> Outcome | None:
        """Success for content received before (not processed again), a refusal when the
        store cannot say, or None for content new to the gateway."""
        try:
            earlier = self.store.find_job(obj.sop_instance_uid, sha)
        except StoreError as exc:
            return self.reject(label, store_unavailable(exc))
        return None if earlier is None else self.duplicate(label, earlier.id, obj, None)

    def spool(self, name: str, data: bytes) -> Path | Outcome:
        """Write `data` durably into the spool under `name`, or say why it could not be.
        A store that keeps objects itself (PostgreSQL) commits them with their job
        instead: nothing is written here, and the name is only recorded."""
        if self.store.keeps_objects:
            return Path(name)
        try:
            if free_bytes(self.spool_dir) < self.min_free_bytes + len(data):
                return Outcome(OUT_OF_RESOURCES, "no-disk-space", "spool disk is full")
            return write_durably(self.spool_dir / name, data)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                return Outcome(OUT_OF_RESOURCES, "no-disk-space", "spool disk is full")
            failed = "spool write failed"
            return Outcome(OUT_OF_RESOURCES, "spool-write-failed", failed, detail=str(exc))

    def enqueue(
        self,
        obj: ReceivedObject,
        sha: str,
        path: Path,
        label: str,
        header: HeaderFacts,
        kind: str,
    ) -> Outcome:
        """Queue the job of an object already durable in the spool at `path`; success
        only once the job is committed."""
        priority, head_start_s = self.prioritise(header) if self.prioritise else ("routine", 0.0)
        new = NewJob(
            sop_instance_uid=obj.sop_instance_uid,
            sop_class_uid=obj.sop_class_uid,
            content_sha256=sha,
            spool_path=str(path),
            kind=kind,
            calling_ae=obj.calling_ae,
            called_ae=obj.called_ae,
            peer=obj.peer,
            modality=header.modality,
            institution=header.institution,
            station=header.station,
            patient_key=header.patient_key,
            source=obj.source,
            priority=priority,
            head_start_s=head_start_s,
        )
        try:
            content = obj.file_bytes if self.store.keeps_objects else None
            enqueued = self.store.add_job(new, content=content)
        except StoreError as exc:
            return self.reject(label, store_unavailable(exc))
        if enqueued.duplicate:
            return self.duplicate(label, enqueued.job_id, obj, header)
        self.metrics.inc(m.OBJECTS_ACCEPTED)
        if enqueued.is_correction:
            self.metrics.inc(m.OBJECTS_CORRECTION)
        log.info(
            "accepted %s as job %d (%s%s%s) from %s@%s",
            label,
            enqueued.job_id,
            new.kind,
            ", correction" if enqueued.is_correction else "",
            f", {priority} order" if priority != "routine" else "",
            new.calling_ae or new.source,
            new.peer,
        )
        self.on_job()
        self._audit(obj, header)
        return Outcome(SUCCESS, job_id=enqueued.job_id)

    def duplicate(
        self, label: str, job_id: int, obj: ReceivedObject, header: HeaderFacts | None
    ) -> Outcome:
        """Success for an object received before: acknowledged (and audited as a
        transfer), not processed again."""
        self.metrics.inc(m.OBJECTS_DUPLICATE)
        log.info("already received %s: acknowledged, not processed again", label)
        self._audit(obj, header)
        return Outcome(SUCCESS, job_id=job_id, duplicate=True)

    def _audit(self, obj: ReceivedObject, header: HeaderFacts | None) -> None:
        """The ATNA record of an acknowledged transfer; a duplicate found before the
        object check has its identifiers read here (a resend is rare)."""
        if self.audit is None:
            return
        if header is None:
            header = audit_facts(obj)
        instance = Instance(
            obj.sop_class_uid,
            obj.sop_instance_uid,
            header.study_uid,
            header.patient_id,
            header.patient_id_issuer,
        )
        self.audit.instance_received(instance, obj.calling_ae, obj.peer.rpartition(":")[0])

    def reject(self, label: str, outcome: Outcome) -> Outcome:
        """Count and log a refusal (ids and a content hash only, never patient data)."""
        self.metrics.reject(outcome.reason or "unknown")
        log.warning(
            "rejected %s with status 0x%04X (%s): %s%s",
            label,
            outcome.status,
            outcome.reason,
            outcome.comment,
            f" ({outcome.detail})" if outcome.detail else "",
        )
        return outcome


def store_unavailable(exc: StoreError) -> Outcome:
    """0xA700 for a store that cannot answer now; its message (the database's address or
    file) only in the log."""
    return Outcome(OUT_OF_RESOURCES, "store-unavailable", "store unavailable", detail=str(exc))


@dataclass(frozen=True)
class HeaderFacts:
    """What the job row keeps of the header, read here, before anything is written: an
    element that cannot be read refuses the object instead of failing after the spool.
    Routing may choose an engine by modality, institution and station, so the workers need
    not read the header again; the patient key keeps a patient's deliveries in order."""

    modality: str
    institution: str
    station: str
    patient_key: str
    # for the audit record only (PS3.15 A.5.3.5 names the patient and the study)
    patient_id: str = ""
    patient_id_issuer: str = ""
    study_uid: str = ""
    accession_number: str = ""  # with the Study Instance UID: which order (its priority)
    patient_name: str = ""  # read for with_nul only: the over-read worklist stores it

    def with_nul(self) -> str | None:
        """The DICOM keyword of a fact holding a NUL character, or None. No DICOM text VR
        allows one inside a value (PS3.5 6.2; pydicom strips it as trailing padding), and
        PostgreSQL text cannot hold one: such an object would be refused as "store
        unavailable" (0xA700) on every retry, so it is refused for what it is instead."""
        return next((k for k, f in _FACT_KEYWORDS.items() if "\x00" in getattr(self, f)), None)

    @classmethod
    def of(cls, ds: Dataset, sop_instance_uid: str) -> HeaderFacts:
        return cls(
            _text(ds, "Modality"),
            _text(ds, "InstitutionName"),
            _text(ds, "StationName"),
            _patient_key(ds, sop_instance_uid),
            _text(ds, "PatientID"),
            _text(ds, "IssuerOfPatientID"),
            _text(ds, "StudyInstanceUID"),
            _text(ds, "AccessionNumber"),
            _text(ds, "PatientName"),
        )


# HeaderFacts' text fields by the DICOM keyword they are read from (patient_key is a hash).
_FACT_KEYWORDS = {
    "Modality": "modality",
    "InstitutionName": "institution",
    "StationName": "station",
    "PatientID": "patient_id",
    "IssuerOfPatientID": "patient_id_issuer",
    "StudyInstanceUID": "study_uid",
    "AccessionNumber": "accession_number",
    "PatientName": "patient_name",
}


def audit_facts(obj: ReceivedObject) -> HeaderFacts:
    """The header facts of an object already accepted once (a resend), for its audit
    record; empty where the header cannot be read again."""
    try:
        ds = pydicom.dcmread(BytesIO(obj.file_bytes), stop_before_pixels=True)
        return HeaderFacts.of(ds, obj.sop_instance_uid)
    except Exception:  # noqa: BLE001 - it was read once already; an audit must not fail intake
        return HeaderFacts("", "", "", "")


def check_object(obj: ReceivedObject) -> Outcome | HeaderFacts:
    """Why this object cannot be accepted, or its header facts when it is fit to spool."""
    if obj.sop_class_uid not in KIND_BY_SOP_CLASS:
        return Outcome(
            SOP_CLASS_NOT_SUPPORTED, "sop-class-not-supported", "SOP class not supported"
        )
    try:
        return _inspect(pydicom.dcmread(BytesIO(obj.file_bytes)), obj)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on garbage, all one outcome
        return Outcome(CANNOT_UNDERSTAND, "undecodable", f"cannot decode: {type(exc).__name__}")


def _inspect(ds: Dataset, obj: ReceivedObject) -> Outcome | HeaderFacts:
    # Identity first: garbage has none, while a cut-off object keeps it (it comes first).
    if not ds.get("SOPClassUID") or not ds.get("SOPInstanceUID"):
        return Outcome(CANNOT_UNDERSTAND, "undecodable", "no SOP Class UID or SOP Instance UID")
    truncated = _truncated_element(ds)
    if truncated is not None:
        return Outcome(CANNOT_UNDERSTAND, "truncated", f"element {truncated} is truncated")
    identity = _check_identity(ds, obj)
    if identity is not None:
        return identity
    problem = _KIND_CHECKS[KIND_BY_SOP_CLASS[obj.sop_class_uid]](ds)
    if problem is not None:
        slug, comment = problem
        return Outcome(DATASET_DOES_NOT_MATCH_SOP_CLASS, slug, comment)
    return checked_facts(HeaderFacts.of(ds, obj.sop_instance_uid))


def checked_facts(facts: HeaderFacts) -> HeaderFacts | Outcome:
    """The facts, or the refusal of an object whose header facts hold a NUL character."""
    keyword = facts.with_nul()
    if keyword is None:
        return facts
    return Outcome(CANNOT_UNDERSTAND, "nul-in-text", f"{keyword} holds a NUL character")


def _truncated_element(ds: Dataset) -> str | None:
    """The tag of an element whose value is shorter than its declared length, at any depth.

    pydicom reads a cut-off stream without complaint (it just returns fewer bytes), so a
    truncated transfer would otherwise pass for a complete object. A cut inside a
    sequence of defined length shows as that sequence being short, so only sequences of
    undefined length need to be opened (converting every element would cost ~40 ms).
    """
    for raw in ds.elements():
        if not isinstance(raw, RawDataElement):
            continue
        if raw.length != _UNDEFINED_LENGTH:
            if raw.value is not None and len(raw.value) < raw.length:
                return str(raw.tag)
            continue
        elem = ds[raw.tag]
        if elem.VR == "SQ":
            for item in elem.value:
                found = _truncated_element(item)
                if found is not None:
                    return found
    return None


def _check_identity(ds: Dataset, obj: ReceivedObject) -> Outcome | None:
    sop_class = str(ds.SOPClassUID)
    sop_instance = str(ds.SOPInstanceUID)
    if not is_valid_uid(obj.sop_instance_uid):
        return Outcome(CANNOT_UNDERSTAND, "invalid-uid", "SOP Instance UID is not a valid UID")
    if sop_class != obj.sop_class_uid or sop_instance != obj.sop_instance_uid:
        return Outcome(
            DATASET_DOES_NOT_MATCH_SOP_CLASS,
            "sop-mismatch",
            "SOP Class/Instance UID in the dataset differ from the request",
        )
    return None


def _check_waveform(ds: Dataset) -> tuple[str, str] | None:
    waveforms = ds.get("WaveformSequence")
    if not waveforms:
        return "missing-waveform", "no WaveformSequence"
    for index, item in enumerate(waveforms):
        missing = _missing(
            item,
            (
                "NumberOfWaveformChannels",
                "NumberOfWaveformSamples",
                "WaveformBitsAllocated",
                "SamplingFrequency",
                "WaveformData",
            ),
        )
        if missing:
            return "missing-waveform", f"waveform {index + 1} has no {missing}"
        expected = (
            int(item.NumberOfWaveformChannels)
            * int(item.NumberOfWaveformSamples)
            * int(item.WaveformBitsAllocated)
            // 8
        )
        short = _too_short(item.WaveformData, expected, f"waveform {index + 1} has")
        if short:
            return "waveform-size-mismatch", short
    return None


def _check_image(ds: Dataset) -> tuple[str, str] | None:
    missing = _missing(ds, ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "PixelData"))
    if missing:
        return "missing-pixel-data", f"no {missing}"
    if UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * int(ds.BitsAllocated)
    expected = (bits * frames + 7) // 8
    short = _too_short(ds.PixelData, expected, "PixelData has")
    return ("pixel-size-mismatch", short) if short else None


def _check_pdf(ds: Dataset) -> tuple[str, str] | None:
    document = ds.get("EncapsulatedDocument")
    if not document:
        return "missing-document", "no EncapsulatedDocument"
    if str(ds.get("MIMETypeOfEncapsulatedDocument", "")).strip() != "application/pdf":
        return "missing-document", "MIMETypeOfEncapsulatedDocument is not application/pdf"
    if bytes(document[:5]) != b"%PDF-":
        return "missing-document", "EncapsulatedDocument is not a PDF"
    problem = _unreadable_pdf(bytes(document))
    return ("unreadable-pdf", problem) if problem else None


def _unreadable_pdf(data: bytes) -> str | None:
    """Why PDFium cannot open the document, if it cannot: a truncated or made-up PDF
    passes the `%PDF-` check but would reach the EHR as a report nobody can open."""
    with _PDFIUM_LOCK:
        try:
            document = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError:
            return "EncapsulatedDocument is not a readable PDF"
        try:
            return None if len(document) else "EncapsulatedDocument has no pages"
        finally:
            document.close()


def _too_short(data: bytes, expected: int, what: str) -> str | None:
    """A cut-off transfer: fewer bytes than the dimensions declare."""
    return f"{what} {len(data)} bytes, expected {expected}" if len(data) < expected else None


def _text(ds: Dataset, keyword: str) -> str:
    """One value as decoding reads it (the first of several), so intake's routing facts
    and patient key equal what processing computes from the decoded header."""
    return dicom_text(ds, keyword) or ""


def _patient_key(ds: Dataset, sop_instance_uid: str) -> str:
    """The routing patient key, as processing will compute it from the decoded header."""
    return key_for_patient(
        _text(ds, "PatientID"),
        _text(ds, "IssuerOfPatientID"),
        _text(ds, "SOPInstanceUID") or sop_instance_uid,
    )


def _missing(ds: Dataset, keywords: tuple[str, ...]) -> str | None:
    return next((k for k in keywords if ds.get(k) in (None, b"", "")), None)


_KIND_CHECKS = {WAVEFORM: _check_waveform, SECONDARY_CAPTURE: _check_image, PDF: _check_pdf}
