"""The store's critical alerts: a report that met a critical-result rule, and who was told.

A row is written by the worker just before the job's completion commits (so an alert is
never lost to a crash after it), and is sent only once its job is done. Its life:
pending (first notice due) -> notified (waiting for someone to open the report) ->
escalating (second notice due, nobody opened it in time) -> closed; or closed at once
when a physician opens or acknowledges it; dead when sending gave up (logged loudly).
Every send is leased first, so two gateway nodes never send the same notice. Each target
that took a notice is recorded (critical_notice_targets), so a retry after another target
failed, from this node, another one or after a restart, does not page through it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

AlertState = Literal["pending", "notified", "escalating", "closed", "dead"]
_COLUMNS = (
    "job_id, rules, state, attempts, next_attempt_at, last_error, created_at,"
    " notified_at, escalated_at, acknowledged_by, acknowledged_at"
)

# Unacknowledged alerts whose notice went out before :before: escalation due. Also one
# still retried, or given up, for a target that keeps failing where another target took
# it before :before: a physician paged once must not go unescalated because a mailbox
# is broken (a dead alert keeps its state when acknowledged, hence acknowledged_at).
_START_ESCALATIONS = (
    "UPDATE critical_alerts SET state = 'escalating', attempts = 0, next_attempt_at = :now,"
    " updated_at = :now WHERE (state = 'notified' AND notified_at <= :before)"
    " OR (state IN ('pending', 'dead') AND acknowledged_at IS NULL AND EXISTS (SELECT 1"
    " FROM critical_notice_targets t WHERE t.job_id = critical_alerts.job_id"
    " AND t.escalation = 0 AND t.sent_at <= :before))"
)


@dataclass(frozen=True)
class CriticalAlert:
    job_id: int
    rules: tuple[str, ...]
    state: AlertState
    attempts: int  # failed tries of the notice now due
    next_attempt_at: float
    last_error: str | None
    created_at: float
    notified_at: float | None
    escalated_at: float | None
    acknowledged_by: str | None
    acknowledged_at: float | None

    @property
    def escalation(self) -> bool:
        return self.state == "escalating"


class CriticalAlertQueries:
    """Mixin for Store (queries.py): its _statement/_execute/_query/_update."""

    def record_critical_alert(
        self, job_id: int, rules: list[str], now: float | None = None
    ) -> None:
        """A job's report is critical: its first notice is due once the job is done. A
        job redone keeps the alert it has (and what was already sent)."""
        at = time.time() if now is None else now
        self._update(
            "INSERT INTO critical_alerts (job_id, rules, next_attempt_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            (job_id, ",".join(rules), at, at, at),
        )

    def lease_due_critical_alerts(
        self, escalate_before: float, now: float | None = None, lease_s: float = 60.0
    ) -> list[CriticalAlert]:
        """Alerts with a notice to send now, leased for `lease_s`. A notified alert whose
        notice went out before `escalate_before` and that nobody acknowledged becomes due
        for escalation here."""
        now = time.time() if now is None else now
        with self._transaction() as conn:
            self._execute(conn, _START_ESCALATIONS, {"now": now, "before": escalate_before})
            leased = self._execute(
                conn,
                f"UPDATE critical_alerts SET lease_expires_at = :until, updated_at = :now"
                f" WHERE job_id IN (SELECT a.job_id FROM critical_alerts a"
                f"  JOIN jobs j ON j.id = a.job_id WHERE j.state = 'done'"
                f"  AND a.state IN ('pending', 'escalating') AND a.next_attempt_at <= :now"
                f"  AND (a.lease_expires_at IS NULL OR a.lease_expires_at <= :now))"
                f" RETURNING {_COLUMNS}",
                {"until": now + lease_s, "now": now},
            ).fetchall()
            return sorted((_alert(row) for row in leased), key=lambda alert: alert.job_id)

    def mark_critical_sent(self, job_id: int, escalation: bool, now: float | None = None) -> None:
        """The notice went out: wait for someone to open the report, or (escalation) done."""
        now = time.time() if now is None else now
        sent = (
            "state = 'closed', escalated_at = :now"
            if escalation
            else "state = 'notified', notified_at = :now"
        )
        # Each notice from its own state only: a first notice's record retried late (the
        # store had refused it) must not turn an escalation under way back to 'notified'.
        before = "'escalating'" if escalation else "'pending'"
        self._update(
            f"UPDATE critical_alerts SET {sent}, attempts = 0, last_error = NULL,"
            f" lease_expires_at = NULL, updated_at = :now"
            f" WHERE job_id = :id AND state = {before}",
            {"now": now, "id": job_id},
        )

    def mark_critical_failed(
        self, job_id: int, error: str, next_attempt_at: float | None, now: float | None = None
    ) -> None:
        """A try failed: again at `next_attempt_at`, or (None) given up for good."""
        now = time.time() if now is None else now
        self._update(
            "UPDATE critical_alerts SET attempts = attempts + 1, last_error = :error,"
            " state = CASE WHEN CAST(:next AS DOUBLE PRECISION) IS NULL THEN 'dead' ELSE state END,"
            " next_attempt_at = COALESCE(CAST(:next AS DOUBLE PRECISION), next_attempt_at),"
            " lease_expires_at = NULL, updated_at = :now"
            " WHERE job_id = :id AND state IN ('pending', 'escalating')",
            {"error": error[:1000], "next": next_attempt_at, "now": now, "id": job_id},
        )

    def record_critical_target(
        self, job_id: int, escalation: bool, target: str, now: float | None = None
    ) -> None:
        """`target` took the notice (or the escalation) at `now`: no retry sends it there
        again. A second record of the same keeps the first time."""
        now = time.time() if now is None else now
        self._update(
            "INSERT INTO critical_notice_targets (job_id, escalation, target, sent_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (job_id, escalation, target) DO NOTHING",
            (job_id, int(escalation), target, now),
        )

    def critical_targets_taken(self, job_id: int, escalation: bool) -> dict[str, float]:
        """The targets that took the notice (or the escalation), and when."""
        rows = self._query(
            "SELECT target, sent_at FROM critical_notice_targets"
            " WHERE job_id = ? AND escalation = ?",
            (job_id, int(escalation)),
        )
        return {row["target"]: row["sent_at"] for row in rows}

    def acknowledge_critical(self, job_id: int, user_id: str, now: float | None = None) -> bool:
        """A physician opened (or acknowledged) the critical report: no escalation. True
        when this was the first acknowledgement."""
        now = time.time() if now is None else now
        changed = self._update(
            "UPDATE critical_alerts SET acknowledged_by = :user, acknowledged_at = :now,"
            " state = CASE WHEN state = 'dead' THEN state ELSE 'closed' END, updated_at = :now"
            " WHERE job_id = :id AND acknowledged_at IS NULL",
            {"user": user_id, "now": now, "id": job_id},
        )
        return changed == 1

    def get_critical_alert(self, job_id: int) -> CriticalAlert | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM critical_alerts WHERE job_id = ?", (job_id,))
        return _alert(rows[0]) if rows else None


def _alert(row: object) -> CriticalAlert:
    values = dict(row)
    values["rules"] = tuple(name for name in values["rules"].split(",") if name)
    return CriticalAlert(**values)
