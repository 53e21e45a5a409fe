"""`ecg-gateway reports history JOB`: every version of a report and every change to it
(who, when, what before and after), every refused attempt, and the notice of its
critical findings (who was told when, escalated, opened, or given up), as text for people.

Shows codes, statement texts, the impression and measurements: what a report carries,
no patient data.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from gateway.cli.common import add_config_options, on_existing_store
from gateway.config import GatewayConfig
from gateway.store import Store
from gateway.store.critical_alerts import CriticalAlert
from gateway.store.report_records import Change


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reports", help="the versions and change history of over-read reports")
    reports = p.add_subparsers(dest="reports_command", required=True, metavar="ACTION")
    history = reports.add_parser("history", help="a report's versions and changes")
    history.add_argument("job", type=int, help="the job number (`jobs list`)")
    add_config_options(history)
    p.set_defaults(func=run)


@on_existing_store
def run(args: argparse.Namespace, config: GatewayConfig, store: Store) -> int:
    text = format_history(store, args.job)
    print(text or f"no report versions for job {args.job}")
    return 0 if text else 1


def format_history(store: Store, job_id: int) -> str:
    versions = store.report_versions(job_id)
    if not versions:
        return ""
    lines = [f"report {job_id}", f"{'VERSION':>7}  {'STATUS':<11}  {'AT':<19}  BY"]
    for v in versions:
        by = v.created_by or "(machine)"
        lines.append(f"{v.version:>7}  {v.status:<11}  {_time(v.created_at)}  {by}")
    changes = store.report_changes(job_id)
    lines.append("changes:" if changes else "changes: none")
    for change in changes:
        lines.extend(_change_lines(change))
    alert = store.get_critical_alert(job_id)
    if alert is not None:
        taken = {kind: store.critical_targets_taken(job_id, kind) for kind in (False, True)}
        lines.extend(_alert_lines(alert, taken))
    return "\n".join(lines)


def _alert_lines(alert: CriticalAlert, taken: dict[bool, dict[str, float]]) -> list[str]:
    """The critical notice: its state, then each step that happened, which targets took
    each notice (of one under way or given up: who was told), then the last failed try's
    error (the sender's reason: no patient data, see gateway/notify)."""
    lines = [f"critical notice: {alert.state} ({', '.join(alert.rules)})"]
    steps = (
        ("first notice", alert.notified_at),
        ("escalated", alert.escalated_at),
        (f"opened by {alert.acknowledged_by}", alert.acknowledged_at),
    )
    lines.extend(f"  {what} {_time(at)}" for what, at in steps if at is not None)
    for escalation, targets in taken.items():
        by = ", ".join(f"{name} {_time(at)}" for name, at in sorted(targets.items(), key=_by_time))
        if by:
            lines.append(f"  {'escalation' if escalation else 'notice'} taken by {by}")
    if alert.last_error:
        lines.append(f"  last error ({alert.attempts} tries): {alert.last_error}")
    return lines


def _by_time(target: tuple[str, float]) -> tuple[float, str]:
    return target[1], target[0]


def _change_lines(change: Change) -> list[str]:
    head = f"  {_time(change.at)}  {change.user_id}  {change.action}"
    if change.action.startswith("refused"):
        return [f"{head} (had seen version {change.version}): {change.after.get('why', '')}"]
    lines = [f"{head}: version {change.version}"]
    before, after = change.before, change.after
    if before.get("statements") != after.get("statements"):
        lines.append(f"    statements: {_codes(before)} -> {_codes(after)}")
    if before.get("impression") != after.get("impression"):
        lines.append(f"    impression: {before.get('impression')!r} -> {after.get('impression')!r}")
    old, new = before.get("measurements", {}), after.get("measurements", {})
    for key in sorted(k for k in new if old.get(k) != new.get(k)):
        lines.append(f"    {key}: {old.get(key)} -> {new.get(key)}")
    return lines


def _codes(content: dict) -> str:
    return ", ".join(code for code, _ in content.get("statements", [])) or "-"


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
