"""What every deliverer shares: the error type, the sender shape, stable
identities for resends, and keeping patient data out of error messages."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from gateway.processing.package import ReportPackage


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

    def close(self) -> None: ...


def content_version(package: ReportPackage) -> str:
    """Same report content -> same version, so a resend carries the same identity.

    `created_at` is left out: it is when the report was built, not what it says.
    """
    body = package.report.model_dump_json(exclude={"created_at"})
    identity = f"{package.sop_instance_uid}\x00{body}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def redact(text: str, package: ReportPackage, limit: int = 200) -> str:
    """A receiver's error text, with this patient's identifying values blanked.

    Receivers often quote the patient ("patient 12345 unknown"); our logs and
    the delivery table must not.
    """
    meta = package.metadata
    secrets = [meta.patient_id, meta.patient_birth_date, meta.patient_id_issuer]
    if meta.patient_name:
        secrets.extend(part for part in re.split(r"[\^=\s]+", meta.patient_name) if len(part) > 1)
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = re.sub(re.escape(value), "***", text, flags=re.IGNORECASE)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_file_stem(uid: str) -> str:
    """A UID is digits and dots; anything else (a fallback id) is made filename-safe."""
    return re.sub(r"[^0-9A-Za-z._-]", "_", uid) or "unnamed"
