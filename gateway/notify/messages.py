"""What a critical-result notice says. Built from the alert row and routes.yaml's
`critical:` section only, never from the report package: no patient name, ID, birth date
or accession number can reach a pager, a chat channel or a mailbox this way. The link
leads to the web report view, behind its login."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from gateway.routing.critical_schema import CriticalConfig, SmtpTarget
from gateway.store.critical_alerts import CriticalAlert

FIRST = "critical-ecg"
ESCALATION = "critical-ecg-escalation"
_NOTICE_NAMESPACE = uuid.UUID("5d0f3c1e-7a44-4b8e-9f57-1c2b6e8d4a90")


def notice_id(alert: CriticalAlert) -> str:
    """One notice's identity (a name-based UUID of the alert and which notice): the same on
    every resend of it, from any node or after a restart, so a pager or mailbox that has
    it drops the repeat. Delivery is at least once; this makes the second time harmless."""
    kind = ESCALATION if alert.escalation else FIRST
    return str(uuid.uuid5(_NOTICE_NAMESPACE, f"{alert.job_id}\x00{kind}\x00{alert.created_at!r}"))


def notice(alert: CriticalAlert, config: CriticalConfig, now: float) -> dict[str, Any]:
    """The JSON a webhook receives (and what a mail says in words)."""
    texts = {rule.name: rule.text for rule in config.active_rules}
    return {
        "event": ESCALATION if alert.escalation else FIRST,
        "notice_id": notice_id(alert),
        "job_id": alert.job_id,
        "report_url": config.report_link.format(job_id=alert.job_id),
        "rules": [{"name": name, "text": texts.get(name, name)} for name in alert.rules],
        "flagged_at": _iso(alert.created_at),
        "first_notice_at": _iso(alert.notified_at),
        "sent_at": _iso(now),
    }


def email(payload: dict[str, Any], target: SmtpTarget) -> EmailMessage:
    """The mail for `payload`: subject and body name the job and the rules, not the patient."""
    message = EmailMessage()
    escalated = payload["event"] == ESCALATION
    prefix = "ESCALATION: not opened - " if escalated else ""
    names = ", ".join(rule["name"] for rule in payload["rules"])
    message["Subject"] = f"{prefix}Critical ECG result, job {payload['job_id']} ({names})"
    message["From"] = target.sender
    message["To"] = ", ".join(target.to)
    message["Message-ID"] = message_id(payload["notice_id"], target)
    lines = [
        "An ECG report met critical-result rules and awaits a physician:",
        "",
        *(f"  - {rule['text']} [{rule['name']}]" for rule in payload["rules"]),
        "",
        f"Open the report: {payload['report_url']}",
        f"Flagged at: {payload['flagged_at']}",
    ]
    if escalated:
        lines.append(f"First notice at: {payload['first_notice_at']}; nobody has opened it since.")
    message.set_content("\n".join(lines) + "\n")
    return message


def message_id(notice: str, target: SmtpTarget) -> str:
    """RFC 5322 Message-ID of this notice to these recipients: the same on every resend
    (mail systems and clients drop a second message with a Message-ID they have), another
    for another target's recipients; in the sender's domain, as the RFC asks."""
    recipients = hashlib.sha256(",".join(sorted(target.to)).encode()).hexdigest()[:12]
    domain = target.sender.rsplit("@", 1)[1]
    return f"<{notice}.{recipients}@{domain}>"


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()
