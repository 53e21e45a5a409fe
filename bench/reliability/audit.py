"""Each object's fate, from the sender's answer, the store and what the destinations
received; and patient strings searched for in every log and CLI output.

What counts:
- reported: acknowledged, its job done, each of its deliveries sent, and each
  destination holding its report exactly once.
- failed with a reason: acknowledged, and its job failed with an error, or a delivery
  dead with an error (a permanent refusal by the destination); nothing still pending.
- lost: acknowledged, and any of: no job under its SOP Instance UID; a job still
  unfinished when the campaign ends; a job failed or a delivery dead without a reason;
  a delivery the store calls sent that its destination does not hold.
- duplicated: acknowledged, and more than one job under its UID (the gateway stores a
  resend of the same bytes once), or more than one delivery row per destination, or a
  destination holding it more than once: two DiagnosticReports with its identifier at
  the FHIR server, or ORU messages with two different MSH-10s at the MLLP receiver.
  A resend of the same message is not a duplicate: the same MSH-10 again (the receiver
  drops a control ID it has processed) or the same FHIR conditional create again (the
  server answers with the existing resource).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from gateway.store import SqliteStore
from reliability.corpus import PATIENTS
from reliability.faults import Destinations
from reliability.senders import Sent

REPO = Path(__file__).resolve().parent.parent.parent


COUNTS = (
    "tried",
    "refused",
    "internal_errors",
    "unanswered",
    "failed_with_reason",
    "reported",
    "lost",
    "duplicated",
)


@dataclass
class Row:
    """One line of the campaign's table."""

    name: str
    tried: int = 0
    refused: int = 0
    internal_errors: int = 0  # refusals with 0xC211: an exception, not a named check
    unanswered: int = 0
    failed_with_reason: int = 0
    reported: int = 0
    lost: int = 0
    duplicated: int = 0
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def note(self, column: str, what: str) -> None:
        """Keep a few examples of each bad outcome (family and UID: no patient data)."""
        if len(self.examples[column]) < 5:
            self.examples[column].append(what)


@dataclass
class Evidence:
    """The store's jobs and deliveries by UID, and what each destination holds by UID."""

    jobs: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    deliveries: dict[int, list] = field(default_factory=lambda: defaultdict(list))
    fhir_reports: Counter = field(default_factory=Counter)
    hl7_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def gather(data_dir: Path, destinations: Destinations) -> Evidence:
    evidence = Evidence()
    store = SqliteStore(data_dir / "gateway.sqlite3")
    try:
        for job in store.list_jobs(limit=1_000_000):
            evidence.jobs[job.sop_instance_uid].append(job)
        for delivery in store.list_deliveries(limit=1_000_000):
            evidence.deliveries[delivery.job_id].append(delivery)
    finally:
        store.close()
    for report in destinations.fhir.resources("DiagnosticReport"):
        for identifier in report.get("identifier", []):
            value = identifier.get("value", "")
            if value.startswith("urn:oid:"):
                evidence.fhir_reports[value.removeprefix("urn:oid:")] += 1
    for message in list(destinations.hl7.received):
        try:
            uid, control_id = str(message.segment("OBR")[3]), str(message.segment("MSH")[10])
        except (KeyError, IndexError):
            uid, control_id = "(no OBR-3)", str(len(evidence.hl7_ids))
        evidence.hl7_ids[uid].add(control_id)
    return evidence


def tally(name: str, sent: list[Sent], evidence: Evidence) -> Row:
    row = Row(name, tried=len(sent))
    for item in sent:
        label = f"{item.case.family} {item.case.path.name}"
        if item.case.family == "empty dataset":
            row.note("answer", f"{label}: {item.detail}")
        if item.refused:
            row.refused += 1
            if "C211" in item.detail or "internal" in item.detail.lower():
                row.internal_errors += 1
                row.note("internal error", f"{label}: {item.detail}")
        elif item.unanswered:
            row.unanswered += 1
            row.note("unanswered", f"{label}: {item.detail}")
        else:
            _acknowledged(row, item, evidence, label)
    return row


def _acknowledged(row: Row, item: Sent, evidence: Evidence, label: str) -> None:
    jobs = evidence.jobs.get(item.case.uid, [])
    if len(jobs) > 1:
        row.duplicated += 1
        row.note("duplicated", f"{label}: {len(jobs)} jobs")
    if not jobs:
        row.lost += 1
        row.note("lost", f"{label}: acknowledged, no job")
        return
    fates = {_fate(job, evidence, item.case.uid, row, label) for job in jobs}
    if "lost" in fates:
        row.lost += 1
    elif "failed" in fates:
        row.failed_with_reason += 1
    else:
        row.reported += 1


def _given_up(error: str | None, row: Row, label: str) -> str:
    """A job or delivery given up counts as failed only with its reason; without, lost."""
    if error:
        return "failed"
    row.note("lost", f"{label}: given up without a reason")
    return "lost"


def _fate(job, evidence: Evidence, uid: str, row: Row, label: str) -> str:
    if job.state == "failed":
        return _given_up(job.error, row, label)
    if job.state != "done":
        row.note("lost", f"{label}: job still {job.state}")
        return "lost"
    deliveries = evidence.deliveries.get(job.id, [])
    per_destination = Counter(d.destination for d in deliveries)
    if any(n > 1 for n in per_destination.values()):
        row.duplicated += 1
        row.note("duplicated", f"{label}: {dict(per_destination)} delivery rows")
    fates = {_delivery_fate(d, evidence, uid, row, label) for d in deliveries}
    if not deliveries:
        row.note("lost", f"{label}: done without deliveries")
        return "lost"
    return "lost" if "lost" in fates else "failed" if "failed" in fates else "reported"


def _delivery_fate(delivery, evidence: Evidence, uid: str, row: Row, label: str) -> str:
    held = (
        evidence.fhir_reports.get(uid, 0)
        if delivery.destination == "ehr"
        else len(evidence.hl7_ids.get(uid, ()))
    )
    if held > 1:
        row.duplicated += 1
        row.note("duplicated", f"{label}: {held} copies at {delivery.destination}")
    if delivery.state == "dead":
        return _given_up(delivery.last_error, row, f"{label} to {delivery.destination}")
    if delivery.state != "sent":
        row.note("lost", f"{label}: delivery to {delivery.destination} still {delivery.state}")
        return "lost"
    if held == 0:
        row.note("lost", f"{label}: sent to {delivery.destination} but not there")
        return "lost"
    return "reported"


# --- patient data in logs and CLI outputs -----------------------------------------------


def cli_outputs(data_dir: Path) -> dict[str, str]:
    """What an operator sees: `jobs list` and `deliveries list`, all rows."""
    commands = {
        "jobs list": ["jobs", "list", "--limit", "1000000"],
        "jobs list --state failed": ["jobs", "list", "--state", "failed", "--limit", "1000000"],
        "deliveries list": ["deliveries", "list", "--limit", "1000000"],
        "deliveries list --dead": ["deliveries", "list", "--dead", "--limit", "1000000"],
    }
    outputs = {}
    for name, args in commands.items():
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        outputs[name] = done.stdout + done.stderr
    return outputs


def phi_findings(texts: dict[str, str]) -> list[str]:
    """Which patient strings appear where (names case-insensitively)."""
    findings = []
    for source, text in texts.items():
        lowered = text.lower()
        for patient in PATIENTS:
            for value in patient.phi_strings():
                if value.lower() in lowered:
                    line = lowered[: lowered.find(value.lower())].count("\n") + 1
                    findings.append(f"{value!r} in {source}, line {line}")
    return findings


def log_texts(logs: list[Path]) -> dict[str, str]:
    return {p.name: p.read_text(errors="replace") for p in logs if p.exists()}
