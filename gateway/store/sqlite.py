"""The durable store: jobs (one per received object), their leases, and deliveries.

SQLite in WAL mode with synchronous=FULL, so a commit survives power loss. All SQL lives
in this module behind small typed functions; callers never see sqlite3 (errors surface as
StoreError), so a PostgreSQL store can be added beside this one without touching them.

Times are Unix epoch seconds (float); every function that depends on the clock takes
`now` so tests can drive time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.store.records import (
    Delivery,
    Enqueued,
    Job,
    JobState,
    NewJob,
    StoreError,
)
from gateway.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

_UNSENT = "('pending', 'failed')"


_DELIVERY_COLUMNS = (
    "d.id, d.job_id, d.destination, d.patient_key, d.state, d.attempts, d.next_attempt_at,"
    " d.last_error, d.created_at, d.updated_at, d.sent_at, j.sop_instance_uid, j.report_dir"
)


class Store:
    """One connection shared by the server's threads, serialised by a lock.

    SQLite allows one writer at a time anyway; a single connection keeps transactions
    simple. Other processes (the CLI) open their own Store on the same file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _migrate(self) -> None:
        """Create a new store, or bring an older one up to this version in one transaction."""
        if self._schema_version() == SCHEMA_VERSION:
            return
        # The version is read again under the write lock: a CLI and the gateway opening an
        # older store at the same moment must not both migrate it.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version()
            if version == SCHEMA_VERSION:
                self._conn.execute("COMMIT")
                return
            existing = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
            ).fetchone()
            if existing is not None:
                for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step]:
                        self._conn.execute(statement)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _schema_version(self) -> int:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version} is newer than this gateway")
        return version

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on any error), under the lock."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot begin a transaction: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"{self.path}: {exc}") from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    def _update_jobs(self, sql: str, params: tuple) -> list[Job]:
        """One UPDATE of jobs ... RETURNING * in a transaction of its own; the changed jobs."""
        with self._transaction() as conn:
            return [_job(row) for row in conn.execute(sql, params).fetchall()]

    def _update(self, sql: str, params: tuple) -> int:
        """One UPDATE in a transaction of its own; how many rows it changed."""
        with self._transaction() as conn:
            return conn.execute(sql, params).rowcount

    # --- jobs: intake -------------------------------------------------------------------

    def find_job(self, sop_instance_uid: str, content_sha256: str) -> Job | None:
        """The job for exactly this content, if it was received before."""
        rows = self._query(
            "SELECT * FROM jobs WHERE sop_instance_uid = ? AND content_sha256 = ?",
            (sop_instance_uid, content_sha256),
        )
        return _job(rows[0]) if rows else None

    def add_job(self, new: NewJob, now: float | None = None) -> Enqueued:
        """Queue a received object once; same UID with new content is a correction."""
        now = _now(now)
        with self._transaction() as conn:
            same = conn.execute(
                "SELECT id FROM jobs WHERE sop_instance_uid = ? AND content_sha256 = ?",
                (new.sop_instance_uid, new.content_sha256),
            ).fetchone()
            if same is not None:
                return Enqueued(job_id=same["id"], duplicate=True, is_correction=False)
            earlier = conn.execute(
                "SELECT 1 FROM jobs WHERE sop_instance_uid = ? AND state != 'failed' LIMIT 1",
                (new.sop_instance_uid,),
            ).fetchone()
            cursor = conn.execute(
                "INSERT INTO jobs (sop_instance_uid, sop_class_uid, content_sha256, spool_path,"
                " kind, calling_ae, called_ae, peer, modality, institution, station,"
                " patient_key, source, available_at, is_correction, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            return Enqueued(
                job_id=int(cursor.lastrowid), duplicate=False, is_correction=earlier is not None
            )

    # --- jobs: processing ---------------------------------------------------------------

    def lease_job(
        self, owner: str, lease_s: float, max_attempts: int, now: float | None = None
    ) -> Job | None:
        """Take the oldest runnable job (queued, or leased by a worker whose lease ran out
        with attempts left; fail_overdue_jobs ends the others)."""
        now = _now(now)
        leased = self._update_jobs(
            "UPDATE jobs SET state = 'leased', lease_owner = ?, lease_expires_at = ?,"
            " attempts = attempts + 1, updated_at = ?"
            " WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' AND available_at <= ?)"
            " OR (state = 'leased' AND lease_expires_at <= ? AND attempts < ?)"
            " ORDER BY id LIMIT 1) RETURNING *",
            (owner, now + lease_s, now, now, now, max_attempts),
        )
        return leased[0] if leased else None

    def fail_overdue_jobs(self, max_attempts: int, now: float | None = None) -> list[Job]:
        """Fail the jobs whose lease ran out `max_attempts` times: in a running gateway
        that is a job whose processing never ends, so it must not be retaken forever.
        Returned so the caller can say so loudly."""
        now = _now(now)
        return self._update_jobs(
            "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL,"
            " error = 'processing did not finish within its lease in ' || attempts ||"
            " ' attempts', updated_at = ?"
            " WHERE state = 'leased' AND lease_expires_at <= ? AND attempts >= ?"
            " RETURNING *",
            (now, now, max_attempts),
        )

    def complete_job(
        self,
        job_id: int,
        owner: str,
        report_dir: str,
        deliveries: list[tuple[str, str]],
        now: float | None = None,
    ) -> bool:
        """Mark the job done and queue its deliveries in ONE transaction (exactly-once hand-off).

        Returns False (and changes nothing) when the lease is no longer `owner`'s: another
        worker retook the job after this one's lease expired and will complete it instead.
        """
        now = _now(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'done', report_dir = ?, error = NULL, lease_owner = NULL,"
                " lease_expires_at = NULL, updated_at = ?"
                " WHERE id = ? AND state = 'leased' AND lease_owner = ?",
                (report_dir, now, job_id, owner),
            )
            if cursor.rowcount == 0:
                return False
            _insert_deliveries(conn, job_id, deliveries, now)
            return True

    def fail_job(self, job_id: int, owner: str, error: str, now: float | None = None) -> bool:
        """Permanent failure: kept with its reason for inspection and `jobs retry`."""
        return self._end_lease(job_id, owner, "failed", error, None, _now(now))

    def retry_job_later(
        self, job_id: int, owner: str, error: str, available_at: float, now: float | None = None
    ) -> bool:
        """Transient failure: back to the queue, not before `available_at`."""
        return self._end_lease(job_id, owner, "queued", error, available_at, _now(now))

    def release_job(self, job_id: int, owner: str, now: float | None = None) -> bool:
        """Give an unfinished job back at shutdown; the interrupted try does not count."""
        now = _now(now)
        return self._requeue_uncounted(job_id, owner, None, now, now)

    def hold_job(
        self, job_id: int, owner: str, reason: str, available_at: float, now: float | None = None
    ) -> bool:
        """Keep a job queued, with the reason shown in `jobs list`, until its engine can
        run; holding does not use up its attempts."""
        return self._requeue_uncounted(job_id, owner, reason, available_at, _now(now))

    def _requeue_uncounted(
        self, job_id: int, owner: str, error: str | None, available_at: float, now: float
    ) -> bool:
        changed = self._update(
            "UPDATE jobs SET state = 'queued', available_at = ?, lease_owner = NULL,"
            " lease_expires_at = NULL, attempts = MAX(attempts - 1, 0),"
            " error = COALESCE(?, error), updated_at = ?"
            " WHERE id = ? AND state = 'leased' AND lease_owner = ?",
            (available_at, error, now, job_id, owner),
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
            "UPDATE jobs SET state = ?, error = ?, available_at = COALESCE(?, available_at),"
            " lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
            " WHERE id = ? AND state = 'leased' AND lease_owner = ?",
            (state, error, available_at, now, job_id, owner),
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
        now = _now(now)
        with self._transaction() as conn:
            row = conn.execute(
                "UPDATE jobs SET worker_deaths = worker_deaths + 1,"
                " attempts = MAX(attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL,"
                " state = CASE WHEN worker_deaths + 1 >= :max THEN 'failed' ELSE 'queued' END,"
                " error = CASE WHEN worker_deaths + 1 >= :max"
                "  THEN 'the worker process died each of the ' || (worker_deaths + 1) ||"
                "  ' times it processed this object' ELSE 'worker process died' END,"
                " available_at = :available_at, updated_at = :now"
                " WHERE id = :id AND state = 'leased' AND lease_owner = :owner"
                " RETURNING state",
                {
                    "max": max_deaths,
                    "available_at": available_at,
                    "now": now,
                    "id": job_id,
                    "owner": owner,
                },
            ).fetchone()
            return row["state"] if row is not None else None

    def recover_after_restart(self, now: float | None = None) -> int:
        """Requeue every leased job and delivery: call only while holding the data-dir lock.

        With the lock held no other gateway process uses this store, so every lease is a
        dead process's. The gateway stopping or crashing says nothing about the job, so
        the interrupted try does not count as an attempt (a job that kills its worker
        process is caught by record_worker_death). Returns the number requeued.
        """
        now = _now(now)
        requeued = self._update(
            "UPDATE jobs SET state = 'queued', available_at = ?, lease_owner = NULL,"
            " lease_expires_at = NULL, attempts = MAX(attempts - 1, 0), updated_at = ?"
            " WHERE state = 'leased'",
            (now, now),
        )
        # A second transaction is safe: nothing else runs yet, and a crash between the two
        # only leaves work that the next start does again.
        self._update(
            "UPDATE deliveries SET lease_expires_at = NULL WHERE lease_expires_at IS NOT NULL", ()
        )
        return requeued

    # --- jobs: inspection ---------------------------------------------------------------

    def get_job(self, job_id: int) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs_for_uid(self, sop_instance_uid: str) -> list[Job]:
        rows = self._query(
            "SELECT * FROM jobs WHERE sop_instance_uid = ? ORDER BY id", (sop_instance_uid,)
        )
        return [_job(r) for r in rows]

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        if state is None:
            rows = self._query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM jobs WHERE state = ? ORDER BY id DESC LIMIT ?", (state, limit)
            )
        return [_job(r) for r in rows]

    def count_jobs(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    def retry_failed_jobs(self, sop_instance_uid: str, now: float | None = None) -> int:
        """Requeue the failed jobs of a UID with fresh attempts (and worker deaths: an
        operator retries after fixing what killed the worker); returns how many."""
        now = _now(now)
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
        now = _now(now)
        with self._transaction() as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    f"UPDATE deliveries SET lease_expires_at = :until, updated_at = :now"
                    f" WHERE id IN (SELECT d.id FROM deliveries d"
                    f"  WHERE d.state IN {_UNSENT} AND d.next_attempt_at <= :now"
                    f"  AND (:destination IS NULL OR d.destination = :destination)"
                    f"  AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= :now)"
                    f"  AND NOT EXISTS (SELECT 1 FROM deliveries e"
                    f"   WHERE e.destination = d.destination AND e.patient_key = d.patient_key"
                    f"   AND e.job_id < d.job_id AND e.state IN {_UNSENT})"
                    f"  AND NOT EXISTS (SELECT 1 FROM jobs k"
                    f"   WHERE k.patient_key = d.patient_key AND k.id < d.job_id"
                    f"   AND k.state IN ('queued', 'leased')"
                    # a job held for an unavailable engine may wait for days: it holds
                    # nothing back, or one engine's outage would stop the patient's reports
                    f"   AND NOT (k.state = 'queued' AND k.error LIKE 'held:%'))"
                    f"  ORDER BY d.job_id, d.id LIMIT :limit) RETURNING id",
                    {
                        "until": now + lease_s,
                        "now": now,
                        "limit": limit,
                        "destination": destination,
                    },
                ).fetchall()
            ]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d JOIN jobs j ON j.id = d.job_id"
                f" WHERE d.id IN ({marks}) ORDER BY d.job_id, d.id",
                ids,
            ).fetchall()
            return [_delivery(r) for r in rows]

    def unsent_destinations(self) -> list[str]:
        """Destination names with deliveries still to send (some may be gone from routes)."""
        rows = self._query(
            f"SELECT DISTINCT destination FROM deliveries WHERE state IN {_UNSENT} ORDER BY 1"
        )
        return [r["destination"] for r in rows]

    def purgeable_jobs(self, cutoff: float, limit: int = 1000) -> list[Job]:
        """Done jobs last changed before `cutoff` with nothing left to deliver: their
        spool file and report directory may go (retention)."""
        rows = self._query(
            f"SELECT * FROM jobs j WHERE j.state = 'done' AND j.updated_at < ?"
            f" AND j.report_dir IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.job_id = j.id"
            f"  AND d.state IN {_UNSENT}) ORDER BY j.id LIMIT ?",
            (cutoff, limit),
        )
        return [_job(r) for r in rows]

    def mark_job_files_purged(self, job_id: int, now: float | None = None) -> None:
        """The job's spool file and report directory were deleted by retention."""
        now = _now(now)
        self._update(
            "UPDATE jobs SET spool_path = '', report_dir = NULL, updated_at = ? WHERE id = ?",
            (now, job_id),
        )

    def mark_delivery_sent(self, delivery_id: int, now: float | None = None) -> None:
        now = _now(now)
        self._update_delivery(
            "state = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL",
            (now,),
            delivery_id,
            now,
        )

    def mark_delivery_failed(
        self, delivery_id: int, error: str, next_attempt_at: float, now: float | None = None
    ) -> None:
        self._update_delivery(
            "state = 'failed', attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
            (error, next_attempt_at),
            delivery_id,
            _now(now),
        )

    def mark_delivery_dead(self, delivery_id: int, error: str, now: float | None = None) -> None:
        self._update_delivery(
            "state = 'dead', attempts = attempts + 1, last_error = ?",
            (error,),
            delivery_id,
            _now(now),
        )

    def _update_delivery(
        self, assignments: str, params: tuple, delivery_id: int, now: float
    ) -> None:
        self._update(
            f"UPDATE deliveries SET {assignments}, lease_expires_at = NULL, updated_at = ?"
            f" WHERE id = ?",
            (*params, now, delivery_id),
        )

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        rows = self._query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d JOIN jobs j ON j.id = d.job_id"
            f" WHERE d.id = ?",
            (delivery_id,),
        )
        return _delivery(rows[0]) if rows else None

    def list_deliveries(self, dead_only: bool = False, limit: int = 1000) -> list[Delivery]:
        where = "WHERE d.state = 'dead'" if dead_only else ""
        rows = self._query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d JOIN jobs j ON j.id = d.job_id"
            f" {where} ORDER BY d.id LIMIT ?",
            (limit,),
        )
        return [_delivery(r) for r in rows]

    def recent_deliveries(
        self, *, dead_only: bool = False, limit: int = 100, before_id: int | None = None
    ) -> list[Delivery]:
        """One page, newest first (what an operator looks for); `before_id` pages back
        and stays put while new deliveries arrive, unlike an offset."""
        where = ["d.state = 'dead'"] if dead_only else []
        if before_id is not None:
            where.append("d.id < :before")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d JOIN jobs j ON j.id = d.job_id"
            f" {clause} ORDER BY d.id DESC LIMIT :limit",
            {"before": before_id, "limit": limit},
        )
        return [_delivery(r) for r in rows]

    def count_deliveries(self, dead_only: bool = False) -> dict[str, int]:
        """Deliveries by state, all of them: a page's own rows would undercount."""
        where = "WHERE state = 'dead'" if dead_only else ""
        rows = self._query(f"SELECT state, COUNT(*) AS n FROM deliveries {where} GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    def retry_delivery(self, delivery_id: int, now: float | None = None) -> bool:
        """Send a failed or dead delivery again from scratch (fresh attempts)."""
        now = _now(now)
        changed = self._update(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
            " lease_expires_at = NULL, updated_at = ?"
            " WHERE id = ? AND state IN ('failed', 'dead')",
            (now, now, delivery_id),
        )
        return changed == 1

    def retry_all_dead(self, now: float | None = None) -> int:
        now = _now(now)
        return self._update(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
            " lease_expires_at = NULL, updated_at = ? WHERE state = 'dead'",
            (now, now),
        )

    # --- admin views (readiness, metrics) ---------------------------------------------------

    def check_writable(self) -> None:
        """Raise StoreError unless a write commits: rewriting the schema version writes
        the file's header page, a real write that changes nothing."""
        with self._transaction() as conn:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def queue_stats(self, now: float | None = None) -> tuple[int, float]:
        """Jobs waiting to be processed, and the age in seconds of the oldest (0 if none)."""
        rows = self._query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM jobs WHERE state = 'queued'"
        )
        oldest = rows[0]["oldest"]
        return rows[0]["n"], 0.0 if oldest is None else max(0.0, _now(now) - oldest)

    def delivery_backlog(self, now: float | None = None) -> dict[str, dict[str, float]]:
        """Per destination: unsent ('pending', 'failed') and 'dead' counts, and the age in
        seconds of its oldest unsent delivery ('oldest_s')."""
        rows = self._query(
            "SELECT destination, state, COUNT(*) AS n, MIN(created_at) AS oldest"
            " FROM deliveries WHERE state IN ('pending', 'failed', 'dead')"
            " GROUP BY destination, state"
        )
        backlog: dict[str, dict[str, float]] = {}
        for row in rows:
            entry = backlog.setdefault(
                row["destination"], {"pending": 0, "failed": 0, "dead": 0, "oldest_s": 0.0}
            )
            entry[row["state"]] = row["n"]
            if row["state"] != "dead":
                age = max(0.0, _now(now) - row["oldest"])
                entry["oldest_s"] = max(entry["oldest_s"], age)
        return backlog


def _insert_deliveries(
    conn: sqlite3.Connection, job_id: int, deliveries: list[tuple[str, str]], now: float
) -> None:
    conn.executemany(
        "INSERT INTO deliveries (job_id, destination, patient_key, next_attempt_at,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (job_id, destination) DO NOTHING",
        [(job_id, destination, key, now, now, now) for destination, key in deliveries],
    )


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["is_correction"] = bool(values["is_correction"])
    return Job(**values)


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(**dict(row))
