"""What the store holds, as the rest of the gateway sees it: jobs, deliveries, errors.

Backend-neutral on purpose: the SQLite store (sqlite.py) returns these, and so must any
other backend, so callers never see a database row or driver exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

JobState = Literal["queued", "leased", "done", "failed"]
DeliveryState = Literal["pending", "sent", "failed", "dead", "superseded"]


class StoreError(Exception):
    """The store cannot be read or written (disk full, locked, corrupt)."""


@dataclass(frozen=True)
class NewJob:
    """A received object, already durable in the spool, to be processed."""

    sop_instance_uid: str
    sop_class_uid: str
    content_sha256: str
    spool_path: str
    kind: str
    calling_ae: str  # who sent it: a job always says where its object came from
    called_ae: str
    peer: str
    # From the header at intake, so routing can choose an engine without reading it again.
    modality: str = ""
    institution: str = ""
    station: str = ""
    # The routing patient key from the header (gateway.routing.key_for_patient), so a
    # patient's deliveries can wait for the ECGs received before this one.
    patient_key: str = ""
    # The watched folder's or upload endpoint's source name (routes match on it); a
    # C-STORE object has none: its calling AE says who sent it.
    source: str = ""
    # The priority of the order the ECG was matched to at intake, and how many seconds
    # ahead of its receipt that lets it be leased (a STAT order's ECG goes first).
    priority: str = "routine"
    head_start_s: float = 0.0


@dataclass(frozen=True)
class Enqueued:
    job_id: int
    duplicate: bool
    is_correction: bool


@dataclass(frozen=True)
class Job:
    id: int
    sop_instance_uid: str
    sop_class_uid: str
    content_sha256: str
    spool_path: str
    kind: str
    calling_ae: str
    called_ae: str
    peer: str
    modality: str
    institution: str
    station: str
    state: JobState
    attempts: int  # tries that ended for a reason of the job's own (not a crash or stop)
    worker_deaths: int  # helper processes that died while processing it
    patient_key: str
    source: str
    available_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    error: str | None
    is_correction: bool
    report_dir: str | None
    created_at: float
    updated_at: float
    priority: str = "routine"
    lease_rank: float = 0.0  # leased in this order: receipt time less the head start


@dataclass(frozen=True)
class Delivery:
    id: int
    job_id: int
    destination: str
    patient_key: str
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    sent_at: float | None
    sop_instance_uid: str
    report_dir: str | None
    report_version: int = 1  # the version of the job's report this delivery sends
    report_json: str | None = None  # that version's report; None: the package's own (1)
    # The latest version sent to the same destination before this one (a corrected DICOM
    # SR names it as its predecessor), and its report where that is not the package's own.
    replaces_version: int | None = None
    replaces_json: str | None = None


def clock(now: float | None) -> float:
    """`now` where a caller (a test) drives the time, else the wall clock."""
    return time.time() if now is None else now


# The columns a Job is read from (job_row): what every query that returns jobs selects.
JOB_COLUMNS = (
    "id, sop_instance_uid, sop_class_uid, content_sha256, spool_path, kind, calling_ae,"
    " called_ae, peer, modality, institution, station, state, attempts, worker_deaths,"
    " patient_key, source, available_at, lease_owner, lease_expires_at, error, is_correction,"
    " report_dir, created_at, updated_at, priority, lease_rank"
)


def job_row(row: Any) -> Job:
    """A Job from a row of JOB_COLUMNS (the database keeps is_correction as 0 or 1)."""
    values = dict(row)
    values["is_correction"] = bool(values["is_correction"])
    return Job(**values)
