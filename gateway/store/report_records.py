"""Report versions as the store keeps them (gateway/overread): every version of a job's
report, every change with who made it, and the over-read worklist's index.

A worklist row holds the patient's name and ID (the worklist shows them without opening
10,000 packages), so like an order it is store data: never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.store.order_records import OrderPriority

# The worklist's order: critical first, then by the order's priority, then oldest first.
PRIORITY_RANK: dict[OrderPriority, int] = {"stat": 0, "asap": 1, "routine": 2}
PRIORITY_OF_RANK: dict[int, OrderPriority] = {rank: name for name, rank in PRIORITY_RANK.items()}


@dataclass(frozen=True, kw_only=True)
class ReportHead:
    """What the worklist indexes of a job's report: written with version 1 (the
    preliminary report) in the transaction that completes the job."""

    report_json: str
    status: str
    critical_texts: tuple[str, ...] = ()
    priority: OrderPriority = "routine"
    site: str = ""  # the institution from the header (what routes match on too)
    station: str = ""
    received_at: float
    acquired_at: float | None = None
    patient_name: str = ""  # DICOM PN form
    patient_id: str = ""
    summary: str = ""  # the impression

    @property
    def critical(self) -> bool:
        return bool(self.critical_texts)


@dataclass(frozen=True, kw_only=True)
class WorklistEntry:
    """One report in the over-read worklist."""

    job_id: int
    version: int
    status: str
    received_at: float
    acquired_at: float | None
    site: str
    station: str
    priority: OrderPriority
    critical: bool
    critical_texts: list[str]
    patient_name: str
    patient_id: str
    summary: str
    opened_at: float | None = None  # first opened in the report view
    opened_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReportVersion:
    """One version of a job's report, as it was (or is to be) sent."""

    job_id: int
    version: int
    status: str
    report_json: str
    created_by: str  # "" for the machine's preliminary report
    created_at: float


@dataclass(frozen=True, kw_only=True)
class Change:
    """A change to a report, or a refused attempt at one: who, when, what before and after.

    `action`: "confirmed", "corrected", "refused-role", "refused-stale", ...; `version`
    is the version it produced (or, refused, the one the user had seen)."""

    at: float
    user_id: str
    action: str
    version: int
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NewVersion:
    """A physician's version of a report, to commit with its deliveries and its change."""

    version: int
    status: str
    report_json: str
    created_by: str
    summary: str
    critical_texts: tuple[str, ...]
    change: Change
