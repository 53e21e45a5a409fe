"""The store's queries for report versions (gateway/overread), a mixin of Store.

Version 1 (the machine's preliminary report) is written with the job's completion;
each later version, its deliveries and its change commit in ONE transaction that also
decides, by compare-and-set on the worklist row, which of two physicians confirming at
once wins: the loser's transaction changes nothing. A newer version supersedes the
older unsent deliveries of the same job and destination, so the EHR never receives an
older version after a newer one.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.store.records import JOB_COLUMNS, Job, job_row
from gateway.store.report_records import (
    PRIORITY_OF_RANK,
    PRIORITY_RANK,
    Change,
    NewVersion,
    ReportHead,
    ReportVersion,
    WorklistEntry,
)

_WORKLIST_COLUMNS = (
    "job_id, version, status, critical, critical_texts, priority_rank, site, station,"
    " received_at, acquired_at, patient_name, patient_id, summary, opened_at, opened_by"
)
_VERSION_COLUMNS = "job_id, version, status, report_json, created_by, created_at"
_CHANGE_COLUMNS = "at, user_id, action, version, before_json, after_json"
# Unsent deliveries a newer version makes obsolete (a dead one too: `deliveries retry`
# must not send it after the newer one).
_OBSOLETE_STATES = "('pending', 'failed', 'dead')"


class ReportVersionQueries:
    """Report versions, changes and the worklist; mixed into Store (queries.py)."""

    _transaction: Any
    _execute: Any
    _executemany: Any
    _query: Any

    # --- writing ------------------------------------------------------------------------

    def _first_version(self, conn: Any, job_id: int, head: ReportHead, now: float) -> None:
        """Version 1 and its worklist row, in the caller's transaction; kept if present."""
        self._execute(
            conn,
            "INSERT INTO report_versions (job_id, version, status, report_json, created_by,"
            " created_at) VALUES (?, 1, ?, ?, '', ?) ON CONFLICT (job_id, version) DO NOTHING",
            (job_id, head.status, head.report_json, now),
        )
        self._execute(
            conn,
            "INSERT INTO report_worklist (job_id, version, status, critical, critical_texts,"
            " priority_rank, site, station, received_at, acquired_at, patient_name,"
            " patient_id, summary, updated_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (job_id) DO NOTHING",
            (
                job_id,
                head.status,
                int(head.critical),
                json.dumps(list(head.critical_texts)),
                PRIORITY_RANK[head.priority],
                head.site,
                head.station,
                head.received_at,
                head.acquired_at,
                head.patient_name,
                head.patient_id,
                head.summary,
                now,
            ),
        )

    def index_report(self, job_id: int, head: ReportHead, now: float) -> None:
        """Index the preliminary report of a job completed before the store kept versions."""
        with self._transaction() as conn:
            self._first_version(conn, job_id, head, now)

    def add_report_version(
        self,
        job_id: int,
        base_version: int,
        new: NewVersion,
        deliveries: list[tuple[str, str]],
        now: float,
    ) -> bool:
        """Commit `new` with its deliveries (destination, patient key) and its change, if
        `base_version` is still the report's latest; False (nothing changed) when another
        version was committed since. The UPDATE's row lock makes a concurrent attempt
        wait, then find the version moved on."""
        with self._transaction() as conn:
            moved = self._execute(
                conn,
                "UPDATE report_worklist SET version = :version, status = :status,"
                " summary = :summary, critical = :critical, critical_texts = :texts,"
                " updated_at = :now WHERE job_id = :job AND version = :base",
                {
                    "version": new.version,
                    "status": new.status,
                    "summary": new.summary,
                    "critical": int(bool(new.critical_texts)),
                    "texts": json.dumps(list(new.critical_texts)),
                    "now": now,
                    "job": job_id,
                    "base": base_version,
                },
            ).rowcount
            if moved != 1:
                return False
            self._execute(
                conn,
                f"INSERT INTO report_versions ({_VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, new.version, new.status, new.report_json, new.created_by, now),
            )
            self._executemany(
                conn,
                f"UPDATE deliveries SET state = 'superseded', lease_expires_at ="
                f" CASE WHEN lease_expires_at > ? THEN lease_expires_at END,"
                f" last_error = ?, updated_at = ? WHERE job_id = ? AND destination = ?"
                f" AND report_version < ? AND state IN {_OBSOLETE_STATES}",
                [
                    (now, f"superseded by version {new.version}", now, job_id, name, new.version)
                    for name, _ in deliveries
                ],
            )
            self._executemany(
                conn,
                "INSERT INTO deliveries (job_id, destination, patient_key, report_version,"
                " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id, destination, report_version) DO NOTHING",
                [(job_id, name, key, new.version, now, now, now) for name, key in deliveries],
            )
            self._insert_change(conn, job_id, new.change)
        return True

    def add_report_change(self, job_id: int, change: Change) -> None:
        """Record a change on its own (a refused attempt: the history shows those too)."""
        with self._transaction() as conn:
            self._insert_change(conn, job_id, change)

    def _insert_change(self, conn: Any, job_id: int, change: Change) -> None:
        self._execute(
            conn,
            "INSERT INTO report_changes (job_id, version, at, user_id, action, before_json,"
            " after_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                change.version,
                change.at,
                change.user_id,
                change.action,
                json.dumps(change.before, sort_keys=True),
                json.dumps(change.after, sort_keys=True),
            ),
        )

    def mark_report_opened(self, job_id: int, user_id: str, now: float) -> None:
        """The report was opened in the report view (the first opening is kept: an
        escalation for a critical report waits for it)."""
        with self._transaction() as conn:
            self._execute(
                conn,
                "UPDATE report_worklist SET opened_at = ?, opened_by = ?"
                " WHERE job_id = ? AND opened_at IS NULL",
                (now, user_id, job_id),
            )

    # --- reading ------------------------------------------------------------------------

    def report_versions(self, job_id: int) -> list[ReportVersion]:
        rows = self._query(
            f"SELECT {_VERSION_COLUMNS} FROM report_versions WHERE job_id = ? ORDER BY version",
            (job_id,),
        )
        return [ReportVersion(**dict(row)) for row in rows]

    def latest_report_version(self, job_id: int) -> ReportVersion | None:
        rows = self._query(
            f"SELECT {_VERSION_COLUMNS} FROM report_versions WHERE job_id = ?"
            f" ORDER BY version DESC LIMIT 1",
            (job_id,),
        )
        return ReportVersion(**dict(rows[0])) if rows else None

    def confirmed_reports(self, after_job_id: int = 0, limit: int = 500) -> list[ReportVersion]:
        """The latest version of each report a physician confirmed (final, corrected,
        amended), by job, from the job after `after_job_id` (paging for exports)."""
        columns = ", ".join(f"v.{name.strip()}" for name in _VERSION_COLUMNS.split(","))
        rows = self._query(
            f"SELECT {columns} FROM report_versions v JOIN report_worklist w"
            f" ON w.job_id = v.job_id AND w.version = v.version"
            f" WHERE w.status != 'preliminary' AND v.job_id > ? ORDER BY v.job_id LIMIT ?",
            (after_job_id, limit),
        )
        return [ReportVersion(**dict(row)) for row in rows]

    def report_changes(self, job_id: int) -> list[Change]:
        rows = self._query(
            f"SELECT {_CHANGE_COLUMNS} FROM report_changes WHERE job_id = ? ORDER BY id",
            (job_id,),
        )
        return [_change(row) for row in rows]

    def worklist_entry(self, job_id: int) -> WorklistEntry | None:
        rows = self._query(
            f"SELECT {_WORKLIST_COLUMNS} FROM report_worklist WHERE job_id = ?", (job_id,)
        )
        return _entry(rows[0]) if rows else None

    def worklist(
        self,
        *,
        include_final: bool = False,
        site: str | None = None,
        priority: str | None = None,
        received_since: float | None = None,
        limit: int = 200,
    ) -> list[WorklistEntry]:
        """Reports by worklist order (critical, priority, oldest), from the index: the
        filters are columns of report_worklist, so 10,000 open reports cost one index scan."""
        clause, params = _worklist_filter(include_final, site, priority, received_since)
        rows = self._query(
            f"SELECT {_WORKLIST_COLUMNS} FROM report_worklist {clause}"
            f" ORDER BY critical DESC, priority_rank, received_at, job_id LIMIT :limit",
            {**params, "limit": limit},
        )
        return [_entry(row) for row in rows]

    def worklist_counts(
        self,
        *,
        include_final: bool = False,
        site: str | None = None,
        priority: str | None = None,
        received_since: float | None = None,
    ) -> dict[str, int]:
        """How many reports the same filters match: in all, critical, and per priority
        (the worklist page's counts, without reading 10,000 rows)."""
        clause, params = _worklist_filter(include_final, site, priority, received_since)
        rows = self._query(
            "SELECT priority_rank, critical, COUNT(*) AS n FROM report_worklist"
            f" {clause} GROUP BY priority_rank, critical",
            params,
        )
        counts = dict.fromkeys(("total", "critical", *PRIORITY_RANK), 0)
        for row in rows:
            counts["total"] += row["n"]
            counts["critical"] += row["n"] if row["critical"] else 0
            counts[PRIORITY_OF_RANK[row["priority_rank"]]] += row["n"]
        return counts

    def unindexed_reports(self, limit: int = 1000) -> list[Job]:
        """Done jobs with report files but no worklist row: completed before the store
        kept report versions (gateway/overread indexes them)."""
        rows = self._query(
            f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.state = 'done'"
            f" AND j.report_dir IS NOT NULL AND NOT EXISTS"
            f" (SELECT 1 FROM report_worklist w WHERE w.job_id = j.id) ORDER BY j.id LIMIT ?",
            (limit,),
        )
        return [job_row(row) for row in rows]


def _worklist_filter(
    include_final: bool, site: str | None, priority: str | None, since: float | None
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause and parameters of the worklist's filters."""
    where, params = [], {}
    if not include_final:
        where.append("status = 'preliminary'")
    if site is not None:
        where.append("site = :site")
        params["site"] = site
    if priority is not None:
        where.append("priority_rank = :rank")
        params["rank"] = PRIORITY_RANK[priority]
    if since is not None:
        where.append("received_at >= :since")
        params["since"] = since
    return (f"WHERE {' AND '.join(where)}" if where else ""), params


def _entry(row: Any) -> WorklistEntry:
    values = dict(row)
    values["critical"] = bool(values["critical"])
    values["critical_texts"] = json.loads(values["critical_texts"])
    values["priority"] = PRIORITY_OF_RANK[values.pop("priority_rank")]
    return WorklistEntry(**values)


def _change(row: Any) -> Change:
    values = dict(row)
    return Change(
        at=values["at"],
        user_id=values["user_id"],
        action=values["action"],
        version=values["version"],
        before=json.loads(values["before_json"]),
        after=json.loads(values["after_json"]),
    )
