"""What matching ECGs to orders needs of the store beyond the orders themselves (the
order a job fulfilled is in gateway/store/orders.py with every other order query): a
patient's finished jobs, and sending a finished job's report again with a new package
(reconciling a late order, IHE REWF). Written once for both backends like queries.py.

Deliveries are keyed by (job, destination, report version), so a re-send does not add
rows: each destination's row of the report's latest version (a physician's once one
confirmed it, gateway/overread) goes back to pending, with fresh attempts, in the same
transaction that points the job at its new report directory (and, in a store that keeps
report files itself, stores them). The new package lives under a new directory name, so
no node's cached copy of the old one is taken for it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gateway.store.records import Job
from gateway.store.report_records import PRIORITY_RANK


class OrderJobs:
    """Mixin of Store (queries.py), using its `_transaction`, `_execute`, `_query`,
    `_keep_report` and `_completed`."""

    def done_jobs_for_patient(
        self, patient_key: str, received_since: float = 0.0, limit: int = 100
    ) -> list[Job]:
        """A patient's done jobs received since `received_since`, with their reports still
        kept, newest first (by the routing patient key: the store holds no patient ID in
        its jobs)."""
        rows = self._query(
            "SELECT id FROM jobs WHERE patient_key = ? AND state = 'done'"
            " AND report_dir IS NOT NULL AND created_at >= ? ORDER BY id DESC LIMIT ?",
            (patient_key, received_since, limit),
        )
        jobs = [self.get_job(int(row["id"])) for row in rows]
        return [job for job in jobs if job is not None]

    def report_files_of(self, job: Job) -> Path | None:
        """A directory on this node holding the done job's report package; None when
        retention has removed it."""
        if not job.report_dir or not Path(job.report_dir).is_dir():
            return None
        return Path(job.report_dir)

    def replace_report(
        self,
        job_id: int,
        report_dir: str,
        deliveries: list[tuple[str, str]],
        now: float | None = None,
        order_id: int | None = None,
    ) -> bool:
        """Make `report_dir` the done job's report and queue it to `deliveries`
        ((destination, patient key) pairs) again, in one transaction: a row already sent
        there goes back to pending with fresh attempts. With `order_id`, that order is
        attached to the job (completed) in the same transaction: a late order and its
        re-sent report, or neither. False (nothing changed) when the job is not done or
        the order is no longer open."""
        now = time.time() if now is None else now
        try:
            with self._transaction() as conn:
                if order_id is not None and not self._attach_open_order(
                    conn, order_id, job_id, now
                ):
                    return False  # nothing written yet
                cursor = self._execute(
                    conn,
                    "UPDATE jobs SET report_dir = ?, updated_at = ? WHERE id = ?"
                    " AND state = 'done'",
                    (report_dir, now, job_id),
                )
                if cursor.rowcount == 0:
                    raise _Unchanged  # undoes the order's attachment
                self._requeue_deliveries(conn, job_id, deliveries, now)
                self._keep_report(conn, job_id, report_dir)
                if order_id is not None:
                    self._rank_by_order(conn, job_id, order_id)
        except _Unchanged:
            return False
        self._completed(job_id, report_dir)
        return True

    def _rank_by_order(self, conn: Any, job_id: int, order_id: int) -> None:
        """The over-read worklist ranks the report by its order's priority: a STAT order
        that arrived after its ECG moves the report up, as if it had come first."""
        self._execute(
            conn,
            "UPDATE report_worklist SET priority_rank = CASE (SELECT priority FROM orders"
            " WHERE id = ?) WHEN 'stat' THEN ? WHEN 'asap' THEN ? ELSE ? END WHERE job_id = ?",
            (
                order_id,
                PRIORITY_RANK["stat"],
                PRIORITY_RANK["asap"],
                PRIORITY_RANK["routine"],
                job_id,
            ),
        )

    def _attach_open_order(self, conn: Any, order_id: int, job_id: int, now: float) -> bool:
        cursor = self._execute(
            conn,
            "UPDATE orders SET job_id = ?, state = 'completed', updated_at = ?"
            " WHERE id = ? AND state IN ('scheduled', 'in_progress')",
            (job_id, now, order_id),
        )
        return cursor.rowcount == 1

    def _requeue_deliveries(
        self, conn: Any, job_id: int, deliveries: list[tuple[str, str]], now: float
    ) -> None:
        self._executemany(
            conn,
            "INSERT INTO deliveries (job_id, destination, patient_key, report_version,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, COALESCE((SELECT"
            " w.version FROM report_worklist w WHERE w.job_id = ?), 1), ?, ?, ?)"
            " ON CONFLICT (job_id, destination, report_version) DO UPDATE SET state = 'pending',"
            " attempts = 0, next_attempt_at = excluded.next_attempt_at,"
            " lease_expires_at = NULL, last_error = NULL, sent_at = NULL,"
            " created_at = excluded.created_at, updated_at = excluded.updated_at",
            [(job_id, destination, key, job_id, now, now, now) for destination, key in deliveries],
        )


class _Unchanged(Exception):
    """Leaves a transaction rolled back: the job was not done."""
