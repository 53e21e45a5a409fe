"""Which order a received ECG fulfils (IHE Resting ECG Workflow), and whether the ECG and
its order describe the same patient.

The policy, strongest evidence first:
1. the Study Instance UID or Accession Number the worklist gave the cart: an order that
   carries it (open, or completed by an earlier ECG of the same study: a repeat);
2. else the Patient ID (with its issuer where both sides name one) of an OPEN order
   due within `patient_window_h` of the acquisition;
never the name alone. One order or none: two candidates are ambiguous, and an ECG of an
ambiguous match stays unordered with a warning on its report (a person decides).

A match whose Patient ID (or issuer) differs from the ECG's is refused as well: the EHR
would file the result under the order's patient. Name, birth date and sex that differ
are flagged on the report and in the log (field names only, never values) and the ECG
keeps its own demographics: nothing is merged.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import Field
from pydicom.valuerep import PersonName

from gateway.store.order_records import OPEN_ORDER_STATES, Order, OrderPriority
from gateway.store.records import StoreError
from model.decode.demographics import dicom_date
from model.ecg import EcgMetadata
from model.settings import StrictSettings

log = logging.getLogger(__name__)

MatchedBy = Literal["study-uid", "accession", "patient-id"]
_IDENTITY_FIELDS = ("patient ID", "issuer of patient ID")


class OrderMatching(StrictSettings):
    """gateway.yaml `order_matching:`: how received ECGs find their orders."""

    enabled: bool = Field(True, description="false: every ECG is reported unordered")
    patient_window_h: float = Field(
        12.0,
        ge=0,
        description="an open order of the ECG's Patient ID matches when due (or, with no "
        "scheduled time, received) within this many hours of the acquisition; 0: only the "
        "Study Instance UID or Accession Number match",
    )
    reconcile_late_orders: bool = Field(
        True,
        description="an order arriving after its ECG was reported unordered is attached "
        "and the report sent again referring to it",
    )
    stat_head_start_s: float = Field(
        3600.0,
        ge=0,
        description="a STAT order's ECG is processed as if received this much earlier "
        "(ahead of the queue, yet a routine ECG waiting longer still goes first)",
    )
    asap_head_start_s: float = Field(600.0, ge=0, description="the same for ASAP orders")

    def head_start_s(self, priority: OrderPriority | None) -> float:
        """How far ahead of its receipt time a job of this priority is leased."""
        if priority == "stat":
            return self.stat_head_start_s
        if priority == "asap":
            return self.asap_head_start_s
        return 0.0


class OrderLookup(Protocol):
    """The orders store calls the matching needs (gateway.store.Store has them)."""

    def orders_for_study(self, study_instance_uid: str) -> list[Order]: ...

    def orders_for_accession(self, accession_number: str) -> list[Order]: ...

    def open_orders(self, *, patient_id: str | None = None) -> list[Order]: ...

    def order_for_job(self, job_id: int) -> Order | None: ...


class HeaderIdentifiers(Protocol):
    """What intake read from a received object's header (gateway.intake.accept.HeaderFacts)."""

    study_uid: str
    accession_number: str
    patient_id: str
    patient_id_issuer: str


@dataclass(frozen=True)
class EcgIdentity:
    """What of an ECG is matched and compared with an order."""

    study_instance_uid: str = ""
    accession_number: str = ""
    patient_id: str = ""
    patient_id_issuer: str = ""
    acquired_at: float | None = None  # epoch seconds; the receipt time when unknown
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""

    @classmethod
    def of(cls, metadata: EcgMetadata, received_at: float | None = None) -> EcgIdentity:
        acquired = metadata.acquisition_time
        return cls(
            study_instance_uid=(metadata.study_instance_uid or "").strip(),
            accession_number=(metadata.accession_number or "").strip(),
            patient_id=(metadata.patient_id or "").strip(),
            patient_id_issuer=(metadata.patient_id_issuer or "").strip(),
            acquired_at=_epoch(acquired) if acquired is not None else received_at,
            patient_name=metadata.patient_name or "",
            birth_date=metadata.patient_birth_date or "",
            sex=metadata.patient_sex or "",
        )


@dataclass(frozen=True)
class OrderMatch:
    """The outcome for one ECG: its order (or None), how it was found, and what the
    report must say about it (never patient values)."""

    order: Order | None
    matched_by: MatchedBy | None = None
    mismatches: tuple[str, ...] = ()  # demographic field names that differ
    warning: str | None = None


def match_order(
    orders: OrderLookup, ecg: EcgIdentity, settings: OrderMatching, job_id: int | None = None
) -> OrderMatch:
    """The order `ecg` fulfils under the policy above. `job_id`: the ECG's job, whose own
    order (attached by an earlier try of the same job) still matches."""
    if not settings.enabled:
        return OrderMatch(None)
    found = _by_identifiers(orders, ecg, job_id)
    matched_by: MatchedBy | None = found[1] if found else None
    candidates = found[0] if found else _by_patient(orders, ecg, settings, job_id)
    if not found and candidates:
        matched_by = "patient-id"
    if not candidates:
        return OrderMatch(None)
    if len(candidates) > 1:
        return OrderMatch(
            None,
            warning=f"{len(candidates)} orders fit this ECG ({_HOW[matched_by]}): it was "
            f"matched to none of them and is reported unordered; reconcile it by hand",
        )
    order = candidates[0]
    conflicts = [name for name in _IDENTITY_FIELDS if name in _differences(ecg, order)]
    if conflicts:
        return OrderMatch(
            None,
            warning=f"the order found by {_HOW[matched_by]} is for another "
            f"{' and '.join(conflicts)}: not attached, the ECG is reported unordered; "
            f"check which patient was examined",
        )
    mismatches = tuple(_differences(ecg, order))
    warning = None
    if mismatches:
        warning = (
            f"the ECG and its order (found by {_HOW[matched_by]}) differ in "
            f"{', '.join(mismatches)}: check the patient's identity"
        )
    return OrderMatch(order, matched_by, mismatches, warning)


def intake_priority(
    orders: OrderLookup, settings: OrderMatching
) -> Callable[[HeaderIdentifiers], tuple[OrderPriority, float]]:
    """For intake: the priority of the order a received object is for, as the header
    shows it, and its head start in the work queue (a STAT order's ECG goes first). The
    match is made again, on the decoded ECG, when the job is processed; a store that
    cannot answer now leaves the job routine rather than refusing the object."""

    def prioritise(header: HeaderIdentifiers) -> tuple[OrderPriority, float]:
        ecg = EcgIdentity(
            study_instance_uid=header.study_uid,
            accession_number=header.accession_number,
            patient_id=header.patient_id,
            patient_id_issuer=header.patient_id_issuer,
            acquired_at=time.time(),  # just received: the header's time may be a cart's guess
        )
        try:
            order = match_order(orders, ecg, settings).order
        except StoreError:
            return "routine", 0.0
        priority = order.reference.priority if order is not None else "routine"
        return priority, settings.head_start_s(priority)

    return prioritise


def is_candidate_for(order: Order, ecg: EcgIdentity, settings: OrderMatching) -> bool:
    """Whether `order` is among what the policy would look at for `ecg` (reconciliation
    checks a late order against an unordered ECG with this)."""
    if ecg.study_instance_uid and order.study_instance_uid == ecg.study_instance_uid:
        return True
    if ecg.accession_number and order.reference.accession_number == ecg.accession_number:
        return True
    return order.state in OPEN_ORDER_STATES and _in_patient_window(order, ecg, settings)


def log_match(job_id: int, match: OrderMatch) -> None:
    """One line per matched or refused ECG: ids and field names, never patient data."""
    if match.order is not None and match.mismatches:
        log.warning(
            "job %d matched order %d by %s, but they differ in %s: flagged on the report",
            job_id,
            match.order.id,
            match.matched_by,
            ", ".join(match.mismatches),
        )
    elif match.order is not None:
        log.info("job %d matched order %d by %s", job_id, match.order.id, match.matched_by)
    elif match.warning is not None:
        log.warning("job %d: no order attached: %s", job_id, match.warning)


_HOW = {
    "study-uid": "Study Instance UID",
    "accession": "Accession Number",
    "patient-id": "Patient ID and time",
    None: "",
}


def _by_identifiers(
    orders: OrderLookup, ecg: EcgIdentity, job_id: int | None
) -> tuple[list[Order], MatchedBy] | None:
    """Orders carrying the ECG's Study Instance UID or Accession Number (both tried: two
    different orders found by them is ambiguous, not a pick)."""
    found: dict[int, Order] = {}
    matched_by: MatchedBy | None = None
    for kind, value, lookup in (
        ("study-uid", ecg.study_instance_uid, orders.orders_for_study),
        ("accession", ecg.accession_number, orders.orders_for_accession),
    ):
        usable = [order for order in (lookup(value) if value else []) if _usable(order, job_id)]
        if usable and matched_by is None:
            matched_by = kind
        found.update((order.id, order) for order in usable)
    return (list(found.values()), matched_by) if matched_by else None


def _usable(order: Order, job_id: int | None) -> bool:
    """Open, or completed (by this job, or an earlier ECG of a repeat); never cancelled."""
    return order.state in (*OPEN_ORDER_STATES, "completed") or (
        job_id is not None and order.job_id == job_id
    )


def _by_patient(
    orders: OrderLookup, ecg: EcgIdentity, settings: OrderMatching, job_id: int | None
) -> list[Order]:
    if not ecg.patient_id or settings.patient_window_h <= 0:
        return []
    candidates = orders.open_orders(patient_id=ecg.patient_id)
    own = orders.order_for_job(job_id) if job_id is not None else None
    if own is not None and own.state == "completed":  # attached by an earlier try
        candidates.append(own)
    return [order for order in candidates if _in_patient_window(order, ecg, settings)]


def _in_patient_window(order: Order, ecg: EcgIdentity, settings: OrderMatching) -> bool:
    if not ecg.patient_id or order.patient_id != ecg.patient_id or settings.patient_window_h <= 0:
        return False
    issuers = (_upper(ecg.patient_id_issuer), _upper(order.patient_id_issuer))
    if all(issuers) and issuers[0] != issuers[1]:
        return False
    if ecg.acquired_at is None:
        return False
    due = order.scheduled_at if order.scheduled_at is not None else order.created_at
    return abs(due - ecg.acquired_at) <= settings.patient_window_h * 3600


def _differences(ecg: EcgIdentity, order: Order) -> list[str]:
    """The names of the fields that both sides give and that differ."""
    pairs = (
        ("patient ID", ecg.patient_id, order.patient_id, str.strip),
        ("issuer of patient ID", ecg.patient_id_issuer, order.patient_id_issuer, _upper),
        ("patient name", ecg.patient_name, order.patient_name, _name_key),
        ("birth date", ecg.birth_date, order.birth_date, _date_key),
        ("sex", ecg.sex, order.sex, _sex_key),
    )
    differ = []
    for name, ours, theirs, key in pairs:
        mine, other = key(ours or ""), key(theirs or "")
        if mine and other and mine != other:
            differ.append(name)
    return differ


def _upper(value: str) -> str:
    return value.strip().upper()


def _name_key(value: str) -> str:
    """Family and given name, without case, accents, punctuation or spaces: 'Müller-Lüdenscheidt
    ^Hans' and 'MUELLER LUDENSCHEIDT^HANS'... differ (transliteration is not guessed), but
    'Müller^Hans', 'MULLER^HANS ' and 'muller^hans^^' are the same."""
    name = PersonName(value)
    parts = (name.family_name, name.given_name)
    return "^".join(_fold(part) for part in parts).strip("^")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return re.sub(r"[^0-9A-Z]", "", plain.upper())


def _date_key(value: str) -> str:
    return dicom_date(value) or ""


def _sex_key(value: str) -> str:
    code = value.strip().upper()[:1]
    return code if code in ("M", "F") else ""  # O and U say nothing to compare


def _epoch(value: datetime) -> float:
    """Acquisition times without a zone are the gateway's local time, as carts write them."""
    return value.timestamp() if value.tzinfo is not None else value.astimezone().timestamp()
