"""The store's queries, written once for both backends (sqlite.py, postgres.py).

Every backend answers the same typed calls with the same SQL, so the semantics (one job
per SOP Instance UID and content, leases with expiry, exactly-once hand-off to delivery,
a patient's deliveries in receipt order) cannot drift apart. The SQL is the portable
subset SQLite and PostgreSQL share, with `:name` parameters; a backend supplies the
connection, the transaction, how it writes parameters, the row lock it takes when
leasing, and where it keeps received objects and report files (the hooks at the end).

Times are Unix epoch seconds (float); every function that depends on the clock takes
`now` so tests can drive time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from gateway.store.critical_alerts import CriticalAlertQueries
from gateway.store.delivery_outcomes import DeliveryOutcomes
from gateway.store.delivery_views import (
    DELIVERY_COLUMNS,
    DELIVERY_FROM,
    UNSENT,
    DeliveryViews,
    delivery_row,
)
from gateway.store.order_jobs import OrderJobs
from gateway.store.orders import OrdersMixin
from gateway.store.prior_ecgs import PriorEcgQueries
from gateway.store.records import (
    JOB_COLUMNS,
    Delivery,
    Enqueued,
    Job,
    JobState,
    NewJob,
    clock,
    job_row,
)
from gateway.store.report_records import ReportHead
from gateway.store.report_versions import ReportVersionQueries

_ONE_LESS_ATTEMPT = "CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"


class Store(
    DeliveryOutcomes,
    DeliveryViews,
    OrdersMixin,
    OrderJobs,
    PriorEcgQueries,
    CriticalAlertQueries,
    ReportVersionQueries,
    ABC,
):
    """The durable store as the gateway sees it: jobs, their leases, and deliveries.

    Thread-safe; callers never see a driver exception (errors surface as StoreError).
    """

    # The row lock a lease takes so that concurrent nodes skip each other's rows.
    _LOCK_FOR_LEASE = ""
    # Extra assignment when a delivery is leased (PostgreSQL records the node).
    _DELIVERY_LEASE_SET = ""
    # This gateway node's name (a shared store tells its nodes' leases apart by it).
    node = ""

    # --- what a backend supplies ---------------------------------------------------------

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A connection inside one transaction: committed at the end, rolled back on error."""

    def _lease_transaction(self) -> AbstractContextManager[Any]:
        """The transaction that takes a lease. A lease lost in a crash of the database
        leaves its job or delivery as it was before, to be leased again, so a backend
        may commit it without waiting for the disk (PostgreSQL does)."""
        return self._transaction()

    def _statement(self) -> AbstractContextManager[Any]:
        """A connection for one statement, atomic on its own (by default a transaction;
        a client-server database saves the round trips of BEGIN and COMMIT)."""
        return self._transaction()

    @abstractmethod
    def _execute(self, conn: Any, sql: str, params: tuple | dict = ()) -> Any:
        """Run one statement written with `:name` or `?` parameters; the cursor."""

    @abstractmethod
    def _executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None: ...

    @abstractmethod
    def check_writable(self) -> None:
        """Raise StoreError unless a write commits (readiness)."""

    @abstractmethod
    def backup(self, target: Path) -> None:
        """A consistent copy of the whole store in `target`, taken while the gateway runs."""

    @property
    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def recover_after_restart(self, now: float | None = None) -> int:
        """Requeue what a previous run of this gateway node left leased; how many jobs."""

    def _keep_object(self, conn: Any, job_id: int, content: bytes | None) -> None:
        """Store the received object with its job (a backend that spools to files: no-op)."""

    def _leased(self, conn: Any, job: Job) -> Job:
        """The leased job, its object readable at `spool_path` on this node."""
        return job

    def _keep_report(self, conn: Any, job_id: int, report_dir: str) -> None:
        """Store the report files of a job being completed (file-based backend: no-op)."""

    def _completed(self, job_id: int, report_dir: str) -> None:
        """After a job's completion committed (tidy node-local copies)."""

    def _deliverable(self, conn: Any, deliveries: list[Delivery]) -> list[Delivery]:
        """Leased deliveries, their report files readable at `report_dir` on this node."""
        return deliveries

    def _purgeable(self, job: Job) -> Job:
        """A job as retention sees it: the paths of this node's copies of its files."""
        return job

    def _forget_files(self, conn: Any, job_id: int) -> None:
        """Drop what the store itself keeps of a purged job's files (file-based: no-op)."""

    def holds_object(self, job: Job) -> bool:
        """Whether the object of `job` is still kept (retention has not removed it)."""
        return bool(job.spool_path) and Path(job.spool_path).is_file()

    @property
    def keeps_objects(self) -> bool:
        """True when the store holds received objects itself (add_job needs `content`)."""
        return False

    def prune_local_copies(self, cutoff: float) -> int:
        """Delete this node's cached copies older than `cutoff`; how many went."""
        return 0

    # --- helpers -------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple | dict = ()) -> list[Any]:
        with self._statement() as conn:
            return self._execute(conn, sql, params).fetchall()

    def _update_jobs(self, sql: str, params: tuple | dict) -> list[Job]:
        """One UPDATE of jobs ... RETURNING in a transaction of its own; the changed jobs."""
        with self._statement() as conn:
            return [job_row(row) for row in self._execute(conn, sql, params).fetchall()]

    def _update(self, sql: str, params: tuple | dict) -> int:
        """One UPDATE in a transaction of its own; how many rows it changed."""
        with self._statement() as conn:
            return self._execute(conn, sql, params).rowcount

    # --- jobs: intake -------------------------------------------------------------------

    def find_job(self, sop_instance_uid: str, content_sha256: str) -> Job | None:
        """The job for exactly this content, if it was received before."""
        rows = self._query(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE sop_instance_uid = ? AND content_sha256 = ?",
            (sop_instance_uid, content_sha256),
        )
        return job_row(rows[0]) if rows else None

    def add_job(
        self, new: NewJob, now: float | None = None, content: bytes | None = None
    ) -> Enqueued:
        """Queue a received object once; same UID with new content is a correction.

        `content`: the object itself, for a store that keeps objects (`keeps_objects`),
        committed in the same transaction as its job."""
        now = clock(now)
        with self._transaction() as conn:
            self._serialise_uid(conn, new.sop_instance_uid)
            same = self._execute(
                conn,
                "SELECT id FROM jobs WHERE sop_instance_uid = ? AND content_sha256 = ?",
                (new.sop_instance_uid, new.content_sha256),
            ).fetchone()
            if same is not None:
                return Enqueued(job_id=int(same["id"]), duplicate=True, is_correction=False)
            earlier = self._execute(
                conn,
                "SELECT 1 AS found FROM jobs WHERE sop_instance_uid = ? AND state != 'failed'"
                " LIMIT 1",
                (new.sop_instance_uid,),
            ).fetchone()
            row = self._execute(
                conn,
                "INSERT INTO jobs (sop_instance_uid, sop_class_uid, content_sha256, spool_path,"
                " kind, calling_ae, called_ae, peer, modality, institution, station,"
                " patient_key, source, available_at, is_correction, created_at, updated_at,"
                " priority, lease_rank)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    new.sop_instance_uid,
                    new.sop_class_uid,
                    new.content_sha256,
                    new.spool_path,
                    new.kind,
                    new.calling_ae,
                    new.called_ae,
                    new.peer,
                    new.modality,
                    new.institution,
                    new.station,
                    new.patient_key,
                    new.source,
                    now,
                    int(earlier is not None),
                    now,
                    now,
                    new.priority,
                    now - new.head_start_s,
                ),
            ).fetchone()
            job_id = int(row["id"])
            self._keep_object(conn, job_id, content)
            return Enqueued(job_id=job_id, duplicate=False, is_correction=earlier is not None)

    def _serialise_uid(self, conn: Any, sop_instance_uid: str) -> None:
        """Make concurrent intake of one UID wait its turn (SQLite: one writer anyway)."""

    # --- jobs: processing ---------------------------------------------------------------

    def lease_job(
        self, owner: str, lease_s: float, max_attempts: int, now: float | None = None
    ) -> Job | None:
        """Take the runnable job (queued, or leased by a worker whose lease ran out with
        attempts left; fail_overdue_jobs ends the others) first in line: the oldest,
        counting a STAT or ASAP order's head start (`NewJob.head_start_s`)."""
        now = clock(now)
        lease = (
            f"UPDATE jobs SET state = 'leased', lease_owner = ?, lease_expires_at = ?,"
            f" attempts = attempts + 1, updated_at = ?"
            f" WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' AND available_at <= ?)"
            f" OR (state = 'leased' AND lease_expires_at <= ? AND attempts < ?)"
            f" ORDER BY lease_rank, id LIMIT 1{self._LOCK_FOR_LEASE}) RETURNING {JOB_COLUMNS}"
        )
        params = (owner, now + lease_s, now, now, now, max_attempts)
        with self._lease_transaction() as conn:
            row = self._execute(conn, lease, params).fetchone()
            return self._leased(conn, job_row(row)) if row is not None else None

    def fail_overdue_jobs(self, max_attempts: int, now: float | None = None) -> list[Job]:
        """Fail the jobs whose lease ran out `max_attempts` times: in a running gateway
        that is a job whose processing never ends, so it must not be retaken forever.
        Returned so the caller can say so loudly."""
        now = clock(now)
        return self._update_jobs(
            f"UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL,"
            f" error = 'processing did not finish within its lease in ' || attempts ||"
            f" ' attempts', updated_at = ?"
            f" WHERE state = 'leased' AND lease_expires_at <= ? AND attempts >= ?"
            f" RETURNING {JOB_COLUMNS}",
            (now, now, max_attempts),
        )

    def complete_job(
        self,
        job_id: int,
        owner: str,
        report_dir: str,
        deliveries: list[tuple[str, str]],
        now: float | None = None,
        first_version: ReportHead | None = None,
    ) -> bool:
        """Mark the job done and queue its deliveries in ONE transaction (exactly-once hand-off),
        with `first_version`, the preliminary report as version 1 of the over-read worklist.

        Returns False (and changes nothing) when the lease is no longer `owner`'s: another
        worker retook the job after this one's lease expired and will complete it instead.
        """
        now = clock(now)
        with self._transaction() as conn:
            cursor = self._execute(
                conn,
                "UPDATE jobs SET state = 'done', report_dir = ?, error = NULL, lease_owner = NULL,"
                " lease_expires_at = NULL, updated_at = ?"
                " WHERE id = ? AND state = 'leased' AND lease_owner = ?",
                (report_dir, now, job_id, owner),
            )
            if cursor.rowcount == 0:
                return False
            self._executemany(
                conn,
                "INSERT INTO deliveries (job_id, destination, patient_key, next_attempt_at,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id, destination, report_version) DO NOTHING",
                [(job_id, destination, key, now, now, now) for destination, key in deliveries],
            )
            if first_version is not None:
                self._first_version(conn, job_id, first_version, now)
            self._keep_report(conn, job_id, report_dir)
        self._completed(job_id, report_dir)
        return True

    def fail_job(self, job_id: int, owner: str, error: str, now: float | None = None) -> bool:
        """Permanent failure: kept with its reason for inspection and `jobs retry`."""
        return self._end_lease(job_id, owner, "failed", error, None, clock(now))

    def retry_job_later(
        self, job_id: int, owner: str, error: str, available_at: float, now: float | None = None
    ) -> bool:
        """Transient failure: back to the queue, not before `available_at`."""
        return self._end_lease(job_id, owner, "queued", error, available_at, clock(now))

    def release_job(self, job_id: int, owner: str, now: float | None = None) -> bool:
        """Give an unfinished job back at shutdown; the interrupted try does not count."""
        now = clock(now)
        return self._requeue_uncounted(job_id, owner, None, now, now)

    def hold_job(
        self, job_id: int, owner: str, reason: str, available_at: float, now: float | None = None
    ) -> bool:
        """Keep a job queued, with the reason shown in `jobs list`, until its engine can
        run; holding does not use up its attempts."""
        return self._requeue_uncounted(job_id, owner, reason, available_at, clock(now))

    def _requeue_uncounted(
        self, job_id: int, owner: str, error: str | None, available_at: float, now: float
    ) -> bool:
        changed = self._update(
            f"UPDATE jobs SET state = 'queued', available_at = :available_at,"
            f" lease_owner = NULL, lease_expires_at = NULL, attempts = {_ONE_LESS_ATTEMPT},"
            f" error = COALESCE(CAST(:error AS TEXT), error), updated_at = :now"
            f" WHERE id = :id AND state = 'leased' AND lease_owner = :owner",
            {
                "available_at": available_at,
                "error": error,
                "now": now,
                "id": job_id,
                "owner": owner,
            },
        )
        return changed == 1

    def _end_lease(
        self,
        job_id: int,
        owner: str,
        state: JobState,
        error: str,
        available_at: float | None,
        now: float,
    ) -> bool:
        changed = self._update(
            "UPDATE jobs SET state = :state, error = :error,"
            " available_at = COALESCE(CAST(:available_at AS DOUBLE PRECISION), available_at),"
            " lease_owner = NULL, lease_expires_at = NULL, updated_at = :now"
            " WHERE id = :id AND state = 'leased' AND lease_owner = :owner",
            {
                "state": state,
                "error": error,
                "available_at": available_at,
                "now": now,
                "id": job_id,
                "owner": owner,
            },
        )
        return changed == 1

    def record_worker_death(
        self,
        job_id: int,
        owner: str,
        max_deaths: int,
        available_at: float,
        now: float | None = None,
    ) -> JobState | None:
        """The helper process died while processing this job: count the death instead of
        an attempt, and fail the job at `max_deaths` (an object that kills its worker
        every time). Returns the job's new state, or None if the lease is not `owner`'s."""
        now = clock(now)
        with self._transaction() as conn:
            row = self._execute(
                conn,
                f"UPDATE jobs SET worker_deaths = worker_deaths + 1,"
                f" attempts = {_ONE_LESS_ATTEMPT}, lease_owner = NULL, lease_expires_at = NULL,"
                f" state = CASE WHEN worker_deaths + 1 >= :max THEN 'failed' ELSE 'queued' END,"
                f" error = CASE WHEN worker_deaths + 1 >= :max"
                f"  THEN 'the worker process died each of the ' || (worker_deaths + 1) ||"
                f"  ' times it processed this object' ELSE 'worker process died' END,"
                f" available_at = :available_at, updated_at = :now"
                f" WHERE id = :id AND state = 'leased' AND lease_owner = :owner"
                f" RETURNING state",
                {
                    "max": max_deaths,
                    "available_at": available_at,
                    "now": now,
                    "id": job_id,
                    "owner": owner,
                },
            ).fetchone()
            return row["state"] if row is not None else None

    def _requeue_leased_jobs(self, owner_prefix: str | None, now: float) -> int:
        """Requeue leased jobs (those of owners starting with `owner_prefix`, or all);
        the interrupted try does not count as an attempt."""
        return self._update(
            f"UPDATE jobs SET state = 'queued', available_at = :now, lease_owner = NULL,"
            f" lease_expires_at = NULL, attempts = {_ONE_LESS_ATTEMPT}, updated_at = :now"
            f" WHERE state = 'leased' AND (CAST(:prefix AS TEXT) IS NULL"
            f"  OR substr(lease_owner, 1, length(CAST(:prefix AS TEXT))) = :prefix)",
            {"now": now, "prefix": owner_prefix},
        )

    # --- jobs: inspection ---------------------------------------------------------------

    def get_job(self, job_id: int) -> Job | None:
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return job_row(rows[0]) if rows else None

    def jobs_for_uid(self, sop_instance_uid: str) -> list[Job]:
        rows = self._query(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE sop_instance_uid = ? ORDER BY id",
            (sop_instance_uid,),
        )
        return [job_row(r) for r in rows]

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        rows = self._query(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE (CAST(:state AS TEXT) IS NULL"
            f" OR state = :state) ORDER BY id DESC LIMIT :limit",
            {"state": state, "limit": limit},
        )
        return [job_row(r) for r in rows]

    def count_jobs(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: int(r["n"]) for r in rows}

    def retry_failed_jobs(self, sop_instance_uid: str, now: float | None = None) -> int:
        """Requeue the failed jobs of a UID with fresh attempts (and worker deaths: an
        operator retries after fixing what killed the worker); returns how many."""
        now = clock(now)
        return self._update(
            "UPDATE jobs SET state = 'queued', attempts = 0, worker_deaths = 0,"
            " available_at = ?, error = NULL,"
            " updated_at = ? WHERE sop_instance_uid = ? AND state = 'failed'",
            (now, now, sop_instance_uid),
        )

    # --- deliveries -----------------------------------------------------------------------

    def lease_due_deliveries(
        self,
        now: float | None = None,
        limit: int = 10,
        lease_s: float = 60.0,
        destination: str | None = None,
    ) -> list[Delivery]:
        """Due, unleased deliveries, in the order their ECGs were received (job id),
        leased for `lease_s` seconds.

        So that each destination receives a patient's reports in receipt order, a delivery
        is held back while an earlier-received ECG of the same patient is unsent there, or
        still being processed (its destinations are not known yet). A job that failed for
        good holds nothing up. With `destination`, only that destination's (each
        destination is swept on its own, so a slow one never holds up the others).
        """
        now = clock(now)
        params = {
            "until": now + lease_s,
            "now": now,
            "limit": limit,
            "destination": destination,
            "node": self.node,
        }
        with self._lease_transaction() as conn:
            leased = self._execute(conn, self._lease_due_deliveries_sql(), params).fetchall()
            ids = [row["id"] for row in leased]
            if not ids:
                return []
            return self._deliverable(conn, self._deliveries_by_id(conn, ids))

    def _lease_due_deliveries_sql(self) -> str:
        """lease_due_deliveries' rules as one UPDATE ... RETURNING id, with this backend's
        lease assignment and row lock (one statement: no other node leases between the
        choice and the lease)."""
        return (
            f"UPDATE deliveries SET lease_expires_at = :until, updated_at = :now"
            f"{self._DELIVERY_LEASE_SET}"
            f" WHERE id IN (SELECT d.id FROM deliveries d"
            f"  WHERE d.state IN {UNSENT} AND d.next_attempt_at <= :now"
            f"  AND (CAST(:destination AS TEXT) IS NULL OR d.destination = :destination)"
            f"  AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= :now)"
            f"  AND NOT EXISTS (SELECT 1 FROM deliveries e"
            f"   WHERE e.destination = d.destination AND e.patient_key = d.patient_key"
            f"   AND e.job_id < d.job_id AND e.state IN {UNSENT})"
            f"  AND NOT EXISTS (SELECT 1 FROM jobs k"
            f"   WHERE k.patient_key = d.patient_key AND k.id < d.job_id"
            f"   AND k.state IN ('queued', 'leased')"
            # a job held for an unavailable engine may wait for days: it holds
            # nothing back, or one engine's outage would stop the patient's reports
            f"   AND NOT (k.state = 'queued' AND k.error LIKE 'held:%'))"
            # an older version of the report still on its way there goes first
            f"  AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.job_id = d.job_id"
            f"   AND o.destination = d.destination AND o.report_version < d.report_version"
            f"   AND o.lease_expires_at > :now)"
            f"  ORDER BY d.job_id, d.id LIMIT :limit{self._LOCK_FOR_LEASE})"
            f" RETURNING id"
        )

    def _deliveries_by_id(self, conn: Any, ids: list[int]) -> list[Delivery]:
        """The deliveries `ids` as the caller sees them, in lease order (job id, then id)."""
        marks = ",".join("?" * len(ids))
        rows = self._execute(
            conn,
            f"SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM}"
            f" WHERE d.id IN ({marks}) ORDER BY d.job_id, d.id",
            tuple(ids),
        ).fetchall()
        return [delivery_row(r) for r in rows]

    def purgeable_jobs(self, cutoff: float, limit: int = 1000) -> list[Job]:
        """Done jobs last changed before `cutoff` with nothing left to deliver: their
        spool file and report directory may go (retention)."""
        rows = self._query(
            f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.state = 'done' AND j.updated_at < ?"
            f" AND j.report_dir IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deliveries d"
            f"  WHERE d.job_id = j.id AND d.state IN {UNSENT}) ORDER BY j.id LIMIT ?",
            (cutoff, limit),
        )
        return [self._purgeable(job_row(r)) for r in rows]

    def mark_job_files_purged(self, job_id: int, now: float | None = None) -> None:
        """The job's spool file and report directory were deleted by retention."""
        now = clock(now)
        with self._transaction() as conn:
            self._execute(
                conn,
                "UPDATE jobs SET spool_path = '', report_dir = NULL, updated_at = ? WHERE id = ?",
                (now, job_id),
            )
            self._forget_files(conn, job_id)

    # --- admin views (readiness, metrics) ---------------------------------------------------

    def queue_stats(self, now: float | None = None) -> tuple[int, float]:
        """Jobs waiting to be processed, and the age in seconds of the oldest (0 if none)."""
        rows = self._query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM jobs WHERE state = 'queued'"
        )
        oldest = rows[0]["oldest"]
        return int(rows[0]["n"]), 0.0 if oldest is None else max(0.0, clock(now) - oldest)
