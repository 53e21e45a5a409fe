"""What operators see and do with deliveries: one, a page, counts, the backlog per
destination, and sending failed or dead ones again. Apart from queries.py (the leases
that hand deliveries to the sweeper) to keep that module readable; the same portable SQL
for both backends.
"""

from __future__ import annotations

from typing import Any

from gateway.store.records import Delivery, clock

UNSENT = "('pending', 'failed')"
# The latest version of the same report sent to the same destination before this one.
_SENT_BEFORE = (
    "SELECT MAX(p.report_version) FROM deliveries p WHERE p.job_id = d.job_id"
    " AND p.destination = d.destination AND p.state = 'sent'"
    " AND p.report_version < d.report_version"
)
DELIVERY_COLUMNS = (
    "d.id, d.job_id, d.destination, d.patient_key, d.state, d.attempts, d.next_attempt_at,"
    " d.last_error, d.created_at, d.updated_at, d.sent_at, j.sop_instance_uid, j.report_dir,"
    f" d.report_version, v.report_json, ({_SENT_BEFORE}) AS replaces_version,"
    " (SELECT r.report_json FROM report_versions r WHERE r.job_id = d.job_id"
    f"  AND r.version > 1 AND r.version = ({_SENT_BEFORE})) AS replaces_json"
)
# A delivery of a later report version carries that version's report (version 1 is the
# package's report.json).
DELIVERY_FROM = (
    "deliveries d JOIN jobs j ON j.id = d.job_id LEFT JOIN report_versions v"
    " ON v.job_id = d.job_id AND v.version = d.report_version AND d.report_version > 1"
)


def delivery_row(row: Any) -> Delivery:
    return Delivery(**dict(row))


class DeliveryViews:
    """Mixin for Store (queries.py): its `_query` and `_update`."""

    def unsent_destinations(self) -> list[str]:
        """Destination names with deliveries still to send (some may be gone from routes)."""
        rows = self._query(
            f"SELECT DISTINCT destination FROM deliveries WHERE state IN {UNSENT} ORDER BY 1"
        )
        return [r["destination"] for r in rows]

    def list_deliveries(self, dead_only: bool = False, limit: int = 1000) -> list[Delivery]:
        where = "WHERE d.state = 'dead'" if dead_only else ""
        rows = self._query(
            f"SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} {where} ORDER BY d.id LIMIT ?",
            (limit,),
        )
        return [delivery_row(r) for r in rows]

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
            f"SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM}"
            f" {clause} ORDER BY d.id DESC LIMIT :limit",
            {"before": before_id, "limit": limit},
        )
        return [delivery_row(r) for r in rows]

    def count_deliveries(self, dead_only: bool = False) -> dict[str, int]:
        """Deliveries by state, all of them: a page's own rows would undercount."""
        where = "WHERE state = 'dead'" if dead_only else ""
        rows = self._query(f"SELECT state, COUNT(*) AS n FROM deliveries {where} GROUP BY state")
        return {r["state"]: int(r["n"]) for r in rows}

    def retry_delivery(self, delivery_id: int, now: float | None = None) -> bool:
        """Send a failed or dead delivery again from scratch (fresh attempts)."""
        now = clock(now)
        changed = self._update(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
            " lease_expires_at = NULL, updated_at = ?"
            " WHERE id = ? AND state IN ('failed', 'dead')",
            (now, now, delivery_id),
        )
        return changed == 1

    def retry_all_dead(self, now: float | None = None) -> int:
        now = clock(now)
        return self._update(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
            " lease_expires_at = NULL, updated_at = ? WHERE state = 'dead'",
            (now, now),
        )

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
            entry[row["state"]] = int(row["n"])
            if row["state"] != "dead":
                age = max(0.0, clock(now) - row["oldest"])
                entry["oldest_s"] = max(entry["oldest_s"], age)
        return backlog
