"""What every deliverer shares: the error type, the sender shape, stable
identities for resends, and keeping patient data out of error messages."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict
from typing import NamedTuple, Protocol

from gateway.processing.package import ReportPackage
from model.decode.demographics import dicom_date


class DeliveryError(Exception):
    """A send that did not succeed.

    `permanent` means sending the same content again cannot succeed (the
    receiver judged the content itself invalid), so the delivery goes straight
    to the dead letters instead of being retried for days. `retry_after_s` is how
    long the receiver asked us to wait (HTTP Retry-After), when it said.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after_s: float | None = None
    ):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class SendInterrupted(Exception):
    """A send stopped by the gateway itself (a stop, or a reload that removed its
    destination), not by the destination: the delivery goes back untouched, with no try
    charged to it."""


_UID_NAMESPACE = uuid.UUID("0b9c6a52-8d2e-4f4b-9c1e-2f6d7a3e5b10")

Artefacts = dict[str, bytes]
"""What goes on the wire for one package, by part (".hl7", "message", ...). A destination
type's `prepare` builds it: pure CPU work, done in a formatting process away from DICOM
intake (gateway/delivery/sweeper.py), and the same for every resend of the same report."""


class Sender(Protocol):
    """One destination's connection; reused across sends, closed when routes change."""

    name: str
    destination: object

    def send(self, package: ReportPackage, artefacts: Artefacts) -> str:
        """Deliver, or raise DeliveryError; returns a short receipt for the log."""

    def close(self) -> None:
        """For good. May come from another thread during a send (a reload that removed the
        destination, the gateway's stop): it cuts the send, which raises SendInterrupted."""


def content_version(package: ReportPackage) -> str:
    """Same report content -> same version, so a resend carries the same identity; a new
    status, version, confirmation or order reference (a late order reconciled) is new
    content.

    `created_at` is left out: it is when the report was built, not what it says.
    """
    body = package.report.model_dump_json(exclude={"created_at"})
    identity = f"{package.sop_instance_uid}\x00{body}"
    if package.order is not None:  # appended only then: an unordered ECG keeps its identity
        identity += "\x00" + json.dumps(asdict(package.order), sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


class ObjectUids(NamedTuple):
    study: str
    series: str
    instance: str


def object_uids(package: ReportPackage, role: str, version: str | None = None) -> ObjectUids:
    """Study, series and instance UID of a DICOM object the gateway makes from this report
    (role "pdf": its Encapsulated PDF, "sr": its structured report).

    In the ECG's own study when the ECG names one. The same for every resend of the same
    content, so the archive and an HL7 reference pointer name the same instance; a new
    instance for a correction (`version`: another content version of the same report,
    e.g. the one it replaces). pydicom's generate_uid ignores its entropy sources without
    an org root; this is the same 2.25 form (ISO/IEC 9834-8) from name-based UUIDs.
    """

    def uid(*seed: str) -> str:
        return f"2.25.{uuid.uuid5(_UID_NAMESPACE, chr(0).join(seed)).int}"

    ecg = package.sop_instance_uid
    study = package.metadata.study_instance_uid or uid(ecg, "study")
    instance = uid(ecg, role, version or content_version(package))
    return ObjectUids(study, uid(ecg, role, "series"), instance)


def redact(text: str, package: ReportPackage, limit: int = 200) -> str:
    """A receiver's text (error, ACK, OperationOutcome) with this patient's identifying
    values and every date blanked.

    Receivers often quote the patient ("patient 12345 unknown", "born 01.01.1920"), in
    formats of their own; our logs and the delivery table must not, so any date goes,
    whoever's it is.
    """
    for value in sorted(_secrets(package), key=len, reverse=True):
        text = re.sub(re.escape(value), "***", text, flags=re.IGNORECASE)
    text = " ".join(_DATES.sub("***", text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _secrets(package: ReportPackage) -> set[str]:
    """The identifying values as the package holds them (the order's numbers too), the
    birth date also in FHIR form."""
    meta = package.metadata
    secrets = {meta.patient_id, meta.patient_birth_date, meta.patient_id_issuer}
    secrets.add(meta.accession_number)
    order = package.order
    if order is not None:  # an order's numbers identify the patient's visit as well
        secrets.update(
            (order.placer_order_number, order.filler_order_number, order.accession_number)
        )
    birth_date = dicom_date(meta.patient_birth_date)
    if birth_date:
        secrets.add(
            "-".join(part for part in (birth_date[:4], birth_date[4:6], birth_date[6:]) if part)
        )
    if meta.patient_name:
        secrets.update(part for part in re.split(r"[\^=\s]+", meta.patient_name) if len(part) > 1)
    return {secret.strip() for secret in secrets if secret and secret.strip()}


# Dates as receivers write them: 1920-01-01 (and with a time), 1920/01/01, 19200101,
# 01.01.1920, 01/01/1920, 1-1-20, 1 Jan 1920, January 1, 1920. Not inside a dotted
# number (a UID), nor glued to more digits.
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATES = re.compile(
    r"(?<![\d.])(?:"
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    r"|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})"
    r"|(?:1[89]|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    rf"|\d{{1,2}}\.?\s+{_MONTH}\s+\d{{2,4}}"
    rf"|{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}"
    r")(?!\d|\.\d)",
    re.IGNORECASE,
)


def safe_file_stem(uid: str) -> str:
    """A UID is digits and dots; anything else (a fallback id) is made filename-safe."""
    return re.sub(r"[^0-9A-Za-z._-]", "_", uid) or "unnamed"
