"""Physician over-read on a real store (SQLite and a throwaway PostgreSQL) with real ECGs
through the real pipeline: confirming makes version 2 final and routes it like the
preliminary one; a correction after final is "corrected" and supersedes what is unsent;
two physicians confirming at once: one wins, the other is told who and when, nothing is
sent twice; a reader, a stale version and bad edits are refused and recorded."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from overread_support import JONES, PATIENT_ID, READER, SMITH, Site
from pypdf import PdfReader

from gateway.cli import main
from gateway.overread import (
    Conflict,
    InvalidEdit,
    NotFound,
    PermissionDenied,
    Physician,
    ReportEdit,
    StatementEdit,
    Unavailable,
    statement_catalogue,
)
from gateway.processing.package import ReportPackage
from gateway.store import SqliteStore
from model.report import CriticalFinding

REPO = Path(__file__).resolve().parent.parent

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def site(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    gateway = Site(tmp_path / "data", url)
    yield gateway
    gateway.close()


@pytest.fixture
def sqlite_site(tmp_path):
    gateway = Site(tmp_path / "data", None)
    yield gateway
    gateway.close()


def _afib_edit() -> ReportEdit:
    return ReportEdit(
        statements=[StatementEdit("AFIB"), StatementEdit("LVH", "Left ventricular hypertrophy")],
        impression="Atrial fibrillation, LVH. Confirmed.",
        measurements={"qrs_ms": 102.0},
    )


def _pdf_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _versions(site: Site, job_id: int) -> list[tuple[str, int, str]]:
    return sorted(
        (d.destination, d.report_version, d.state)
        for d in site.store.list_deliveries()
        if d.job_id == job_id
    )


def test_a_finished_job_is_in_the_worklist_as_version_1(site, shared_data):
    job_id = site.receive(shared_data)
    [entry] = site.service.worklist()
    assert (entry.job_id, entry.version, entry.status) == (job_id, 1, "preliminary")
    assert entry.patient_id and entry.priority == "routine" and not entry.critical
    [version] = site.store.report_versions(job_id)
    assert version.created_by == "" and version.status == "preliminary"


def test_confirming_makes_version_2_final_and_routes_it(site, shared_data):
    job_id = site.receive(shared_data)
    view = site.service.view(job_id, SMITH)
    assert view.version == 1 and site.store.worklist_entry(job_id).opened_at is not None
    report = site.service.confirm(job_id, SMITH, _afib_edit(), base_version=view.version)

    assert (report.status, report.version) == ("final", 2)
    assert report.confirmation.physician_id == "smith"
    assert report.confirmation.physician_name == "Smith^Anna"
    assert report.codes == ["AFIB", "LVH"]
    assert report.statements[0].snomed == "164889003"  # from the SCP/SNOMED table
    assert report.measurements.qrs_ms == 102.0
    assert site.routed == [["outbox"]]
    assert _versions(site, job_id) == [("outbox", 1, "superseded"), ("outbox", 2, "pending")]
    assert site.service.worklist() == []  # confirmed: no longer awaiting over-read
    [entry] = site.service.worklist(include_final=True)
    assert (entry.version, entry.status) == (2, "final")

    result = site.sweeper.sweep()
    assert result.sent == 1
    [bundle] = (site.data_dir / "outbox").glob("*.fhir.json")
    text = bundle.read_text()
    assert "Atrial fibrillation, LVH. Confirmed." in text
    [change] = site.service.history(job_id)
    assert (change.action, change.user_id, change.version) == ("confirmed", "smith", 2)
    assert change.before["status"] == "preliminary" and change.after["status"] == "final"
    assert change.after["statements"] == [
        ["AFIB", "Atrial fibrillation"],
        ["LVH", "Left ventricular hypertrophy"],
    ]
    again = site.service.view(job_id, JONES)
    assert again.report == report and [v.version for v in again.versions] == [1, 2]
    original = ReportPackage.load(site.store.report_files_of(site.store.get_job(job_id)))
    assert "UNCONFIRMED" in " ".join(_pdf_text(original.pdf))
    printed = " ".join(_pdf_text(again.pdf))  # drawn again for the final version
    assert "FINAL report, confirmed by Anna Smith (smith)" in printed
    assert "UNCONFIRMED" not in printed and "Atrial fibrillation" in printed
    assert "report confirmed: version 2" in site.audit_text()


def test_correction_after_final_is_corrected_and_supersedes_the_unsent(site, shared_data):
    job_id = site.receive(shared_data)
    site.service.confirm(job_id, SMITH, None, base_version=1)
    edit = ReportEdit(statements=[StatementEdit("SR")], impression="Sinus rhythm.")
    corrected = site.service.confirm(job_id, JONES, edit, base_version=2)

    assert (corrected.status, corrected.version) == ("corrected", 3)
    assert corrected.confirmation.physician_id == "jones"
    assert _versions(site, job_id) == [
        ("outbox", 1, "superseded"),
        ("outbox", 2, "superseded"),
        ("outbox", 3, "pending"),
    ]
    assert site.sweeper.sweep().sent == 1  # only the newest version goes out
    assert [c.action for c in site.service.history(job_id)] == ["confirmed", "corrected"]
    # confirming the corrected report unchanged sends nothing again
    same = site.service.confirm(job_id, SMITH, edit, base_version=3)
    assert same.version == 3 and len(_versions(site, job_id)) == 3


def test_two_physicians_confirming_at_once_one_wins_nothing_sent_twice(site, shared_data):
    job_id = site.receive(shared_data)
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def confirm(user) -> None:
        start.wait()
        try:
            outcomes[user.user_id] = site.service.confirm(job_id, user, None, base_version=1)
        except Conflict as exc:
            outcomes[user.user_id] = exc

    threads = [threading.Thread(target=confirm, args=(u,)) for u in (SMITH, JONES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    conflicts = [o for o in outcomes.values() if isinstance(o, Conflict)]
    reports = [o for o in outcomes.values() if not isinstance(o, Conflict)]
    assert len(conflicts) == 1 and len(reports) == 1
    winner = reports[0].confirmation.physician_id
    assert conflicts[0].by == winner and conflicts[0].version == 2
    assert winner.capitalize() in str(conflicts[0])  # "... by Anna Smith at ..."
    assert _versions(site, job_id) == [("outbox", 1, "superseded"), ("outbox", 2, "pending")]
    assert [v.version for v in site.store.report_versions(job_id)] == [1, 2]
    actions = sorted(c.action for c in site.service.history(job_id))
    assert actions == ["confirmed", "refused-stale"]
    assert site.sweeper.sweep().sent == 1


def test_a_reader_may_not_confirm(sqlite_site, shared_data):
    job_id = sqlite_site.receive(shared_data)
    with pytest.raises(PermissionDenied, match="reader may not confirm"):
        sqlite_site.service.confirm(job_id, READER, None, base_version=1)
    assert [v.version for v in sqlite_site.store.report_versions(job_id)] == [1]
    [change] = sqlite_site.service.history(job_id)
    assert (change.action, change.user_id) == ("refused-role", "rita")
    audit = sqlite_site.audit_text()
    assert "refused-role" in audit and "rita" in audit


def test_a_stale_version_is_refused_naming_who_and_when(sqlite_site, shared_data):
    job_id = sqlite_site.receive(shared_data)
    sqlite_site.service.confirm(job_id, SMITH, None, base_version=1, now=1_800_000_000.0)
    with pytest.raises(Conflict) as refused:
        sqlite_site.service.confirm(job_id, JONES, _afib_edit(), base_version=1)
    assert "version 2 by Anna Smith (smith) at 2027-01-15 08:00:00 UTC" in str(refused.value)
    assert [c.action for c in sqlite_site.service.history(job_id)] == [
        "confirmed",
        "refused-stale",
    ]
    assert "refused-stale" in sqlite_site.audit_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (ReportEdit([StatementEdit("XYZ")], ""), "statement 1: 'XYZ' is not an SCP-ECG"),
        (ReportEdit([StatementEdit("SR"), StatementEdit("SR")], ""), "SR is listed twice"),
        (ReportEdit([], "x" * 2001), "impression: 2001 characters"),
        (ReportEdit([StatementEdit("SR", "a\nb")], ""), "statement 1: contains control"),
        (ReportEdit([], "", {"qrs_ms": 1100.0}), "measurement qrs_ms: 1100 is outside"),
        (ReportEdit([], "", {"qrs_ms": float("nan")}), "measurement qrs_ms: not a number"),
        (ReportEdit([], "", {"weight": 1.0}), "measurement 'weight': not a measurement"),
    ],
)
def test_bad_edits_are_refused_naming_the_field(sqlite_site, shared_data, edit, message):
    job_id = sqlite_site.receive(shared_data)
    with pytest.raises(InvalidEdit, match=message):
        sqlite_site.service.confirm(job_id, SMITH, edit, base_version=1)
    assert [v.version for v in sqlite_site.store.report_versions(job_id)] == [1]


def test_a_measurement_removed_says_why(sqlite_site, shared_data):
    job_id = sqlite_site.receive(shared_data)
    edit = ReportEdit([StatementEdit("SR")], "", {"qt_ms": None})
    report = sqlite_site.service.confirm(job_id, SMITH, edit, base_version=1)
    assert report.measurements.qt_ms is None
    assert "physician" in report.null_reasons["qt_ms"]


def test_the_version_survives_a_restart_and_is_delivered(sqlite_site, shared_data):
    """The version and its deliveries commit together: a gateway killed right after the
    commit delivers the new version from the store when it comes back."""
    job_id = sqlite_site.receive(shared_data)
    sqlite_site.service.confirm(job_id, SMITH, _afib_edit(), base_version=1)
    reopened = SqliteStore(sqlite_site.data_dir / "gateway.sqlite3")
    try:
        [due] = reopened.lease_due_deliveries(limit=5)
        assert due.report_version == 2 and json.loads(due.report_json)["status"] == "final"
    finally:
        reopened.close()


def test_statement_catalogue_searches_codes_and_words():
    codes = [entry.code for entry in statement_catalogue("atrial fib")]
    assert "AFIB" in codes
    assert statement_catalogue("LVH")[0] == ("LVH", "Left ventricular hypertrophy", "164873001")
    assert len(statement_catalogue("")) >= 70


def test_reports_history_cli_shows_versions_changes_and_refusals(sqlite_site, shared_data):
    job_id = sqlite_site.receive(shared_data)
    sqlite_site.service.confirm(job_id, SMITH, _afib_edit(), base_version=1)
    with pytest.raises(PermissionDenied):
        sqlite_site.service.confirm(job_id, READER, None, base_version=2)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["reports", "history", str(job_id), "--data-dir", str(sqlite_site.data_dir)])
    text = printed.getvalue()
    assert code == 0, text
    assert "      2  final" in text and "smith" in text and "(machine)" in text
    assert "smith  confirmed: version 2" in text
    assert "-> AFIB, LVH" in text and "qrs_ms:" in text and "-> 102.0" in text
    assert "rita  refused-role (had seen version 2): role reader may not confirm" in text
    assert PATIENT_ID not in text
    with contextlib.redirect_stdout(io.StringIO()):
        missing = main(["reports", "history", "999", "--data-dir", str(sqlite_site.data_dir)])
    assert missing == 1


def test_critical_findings_are_marked_again_from_what_the_physician_confirmed(
    tmp_path, shared_data
):
    def rules(report):
        afib = "AFIB" in report.codes
        return [CriticalFinding(rule="af", text="Atrial fibrillation")] if afib else []

    site = Site(tmp_path / "data", None)
    site.service.critical = rules
    try:
        job_id = site.receive(shared_data)
        assert not site.service.worklist()[0].critical
        report = site.service.confirm(job_id, SMITH, _afib_edit(), base_version=1)
        assert [f.rule for f in report.critical] == ["af"]
        [entry] = site.service.worklist(include_final=True)
        assert entry.critical and entry.critical_texts == ["Atrial fibrillation"]
        edit = ReportEdit([StatementEdit("SR")], "Sinus rhythm.")
        assert site.service.confirm(job_id, JONES, edit, base_version=2).critical == []
    finally:
        site.close()


def test_only_a_physician_opening_a_critical_report_acknowledges_it(site, shared_data):
    """An administrator or a reader opening the report is nobody who can act on a
    critical finding: the escalation and the targets still to be told stay due."""
    job_id = site.receive(shared_data)
    site.store.record_critical_alert(job_id, ["af"])
    admin = Physician("adam", "Admin^Adam", "admin")
    for user in (READER, admin):
        site.service.view(job_id, user)
        alert = site.store.get_critical_alert(job_id)
        assert alert.acknowledged_at is None, f"a {user.role}'s opening acknowledged it"
    assert site.store.worklist_entry(job_id).opened_by == "rita"  # the opening is recorded
    site.service.view(job_id, SMITH)
    assert site.store.get_critical_alert(job_id).acknowledged_by == "smith"


def test_a_report_whose_files_were_purged_cannot_be_confirmed(sqlite_site, shared_data):
    job_id = sqlite_site.receive(shared_data)
    sqlite_site.store.mark_job_files_purged(job_id)
    with pytest.raises(Unavailable, match=f"the files of report {job_id} were removed"):
        sqlite_site.service.confirm(job_id, SMITH, None, base_version=1)
    with pytest.raises(PermissionDenied):  # refused and audited without the files too
        sqlite_site.service.confirm(job_id, READER, None, base_version=1)
    assert "refused-role" in sqlite_site.audit_text()
    assert [v.version for v in sqlite_site.store.report_versions(job_id)] == [1]
    with pytest.raises(NotFound):
        sqlite_site.service.view(999, SMITH)


_CONFIRM_AND_DIE = """
import os, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from overread_support import SMITH, open_store
from pathlib import Path
from gateway.overread import OverreadService
from gateway.routing import Router
data = Path({data!r})
store = open_store(data, {url!r})
OverreadService(store, Router(data / "routes.yaml", data)).confirm({job}, SMITH, None, 1)
os.kill(os.getpid(), 9)  # after the commit, before any delivery
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_right_after_a_confirmation_loses_nothing(backend, request, tmp_path, shared_data):
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    site = Site(tmp_path / "data", url)
    try:
        job_id = site.receive(shared_data)
    finally:
        site.close()
    script = _CONFIRM_AND_DIE.format(
        repo=str(REPO), tests=str(REPO / "tests"), data=str(tmp_path / "data"), url=url, job=job_id
    )
    died = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert died.returncode == -9, died.stderr
    site = Site(tmp_path / "data", url)  # the gateway comes back
    try:
        assert site.sweeper.sweep().sent == 1
        assert _versions(site, job_id) == [("outbox", 1, "superseded"), ("outbox", 2, "sent")]
        [bundle] = (site.data_dir / "outbox").glob("*.fhir.json")
        assert '"status":"final"' in bundle.read_text()
    finally:
        site.close()


@pytest.mark.parametrize("outcome", ["sent", "failed"])
def test_a_newer_version_waits_for_an_older_one_on_the_wire(sqlite_site, shared_data, outcome):
    store = sqlite_site.store
    job_id = sqlite_site.receive(shared_data)
    [in_flight] = store.lease_due_deliveries(limit=5, lease_s=300)  # version 1 being sent
    sqlite_site.service.confirm(job_id, SMITH, None, base_version=1)
    assert store.lease_due_deliveries(limit=5) == []  # version 2 waits for it
    if outcome == "sent":
        store.mark_delivery_sent(in_flight.id)
        expected = "sent"
    else:
        store.mark_delivery_failed(in_flight.id, "EHR down", next_attempt_at=0)
        expected = "superseded"  # never retried after the newer version
    [due] = store.lease_due_deliveries(limit=5)
    assert due.report_version == 2
    assert [d.state for d in store.recent_deliveries() if d.id == in_flight.id] == [expected]


def test_a_reconciled_resend_sends_the_latest_version(site, shared_data, tmp_path):
    """A late order re-sends a finished report with a new package (order matching):
    after a confirmation that is the final version, never the preliminary again."""
    job_id = site.receive(shared_data)
    site.service.confirm(job_id, SMITH, _afib_edit(), base_version=1)
    assert site.sweeper.sweep().sent == 1
    job = site.store.get_job(job_id)
    replaced = tmp_path / f"{job_id}-reconciled"
    shutil.copytree(site.store.report_files_of(job), replaced)
    assert site.store.replace_report(job_id, str(replaced), [("outbox", job.patient_key)])
    assert _versions(site, job_id) == [("outbox", 1, "superseded"), ("outbox", 2, "pending")]
    assert site.sweeper.sweep().sent == 1
    [bundle] = (site.data_dir / "outbox").glob("*.fhir.json")
    assert '"status":"final"' in bundle.read_text()
