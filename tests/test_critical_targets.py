"""A critical notice retried because one target failed goes only to the targets that have
not taken it: two local webhook servers (test_critical_notify.WebhookPeer, which checks
each request strictly), one that takes every notice and one that answers 503 a few times
first. On both backends, with the store's record read by a fresh notifier (a restart or
another node), a record the store refuses, targets changed in the config between tries,
and a store of the previous schema that gains the record on open."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest
from test_critical_notify import ISSUER, NAME, PATIENT_ID, ROUTES_HEAD, SECRET, WebhookPeer
from test_prior_comparison import Pipeline, ecg_file
from test_store import open_backend
from test_store_critical import PATIENT, _done

from gateway import metrics as m
from gateway.cli.reports import format_history
from gateway.metrics import Metrics
from gateway.notify import CriticalNotifier
from gateway.routing import Router
from gateway.store import SqliteStore
from gateway.store.postgres_schema import SCHEMA_VERSION as POSTGRES_VERSION
from gateway.store.schema import SCHEMA_VERSION as SQLITE_VERSION
from model.rhythm_synthetic import RhythmSpec
from tests.store_faults import REFUSAL, allow_updates, refuse_updates, rename_table

TARGETS_TABLE = "critical_notice_targets"


def _webhook(peer: WebhookPeer) -> str:
    return f"{{type: webhook, url: '{peer.url}', secret: {{env: CRITICAL_HMAC}}}}"


def routes(peers: dict[str, WebhookPeer], notify: list[str]) -> str:
    targets = "".join(f"    {name}: {_webhook(peer)}\n" for name, peer in peers.items())
    return f"""{ROUTES_HEAD}{targets}  notify: [{", ".join(notify)}]
  retry: {{max_attempts: 5, backoff_base: 10s, backoff_cap: 10s}}
  report_link: https://ecg.example.org/reports/{{job_id}}
"""


@pytest.fixture
def peers(request) -> dict[str, WebhookPeer]:
    """The pager (takes every notice), the backup pager and a third one (added later)."""
    made = {name: WebhookPeer() for name in ("pager", "backup", "third")}
    for peer in made.values():
        request.addfinalizer(peer.close)
    return made


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path, peers, monkeypatch):
    """A critical AF ECG processed by the pipeline, its notice due to pager and backup."""
    monkeypatch.setenv("CRITICAL_HMAC", SECRET)
    store = open_backend(request.param, request, tmp_path)
    data = tmp_path / "data"
    pipeline = Pipeline(store, data)
    notify = ["pager", "backup"]
    (data / "routes.yaml").write_text(routes({n: peers[n] for n in notify}, notify))
    pipeline.workers._router.reload_if_changed()
    af = RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=130)
    path = ecg_file(tmp_path, "af", af, PATIENT_ID, ISSUER, datetime(2026, 3, 1, 9, 0))
    job_id = pipeline.process(path).job_id
    yield store, Router(data / "routes.yaml", data), job_id, data
    store.close()


def _due(store, job_id: int) -> float:
    return round(store.get_critical_alert(job_id).created_at) + 1


def _pager_take_unrecorded(site, peers, request, backup_failures: int):
    """The store refuses to record the pager's take; the backup answers 503
    `backup_failures` times. The site's store and job, both peers, a notifier and the
    time the notice is due."""
    store, router, job_id, _ = site
    pager, backup = peers["pager"], peers["backup"]
    backup.fail_next = backup_failures
    refuse_updates(store, request, TARGETS_TABLE, "NEW.target = 'pager'", event="INSERT")
    return store, job_id, pager, backup, CriticalNotifier(store, router), _due(store, job_id)


def _targets_sample(metrics: Metrics, target: str, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "ecg_gateway_critical_notice_targets_total", {"target": target, "outcome": outcome}
    )


def test_a_retry_goes_only_to_the_targets_that_have_not_taken_it(site, peers, caplog):
    """The backup pager answers 503 twice: the pager gets the notice exactly once, the
    backup once it recovers, under the same identity; each retry runs in a fresh
    notifier, so the store's record (not memory) keeps the pager from a second page."""
    caplog.set_level(logging.INFO, logger="gateway.notify.sweeper")
    store, router, job_id, _ = site
    pager, backup = peers["pager"], peers["backup"]
    backup.fail_next = 2
    metrics = Metrics()
    t0 = _due(store, job_id)
    assert CriticalNotifier(store, router, metrics=metrics).sweep(now=t0) == 0
    alert = store.get_critical_alert(job_id)
    assert (alert.state, alert.attempts) == ("pending", 1)
    assert alert.last_error.startswith("backup: webhook 127.0.0.1: HTTP 503")
    history = format_history(store, job_id).splitlines()  # ecg-gateway reports history
    stamp = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%S")
    at = history.index("critical notice: pending (afib-flutter-rapid)")
    assert history[at + 1] == f"  notice taken by pager {stamp}"
    assert CriticalNotifier(store, router, metrics=metrics).sweep(now=t0 + 10) == 0
    assert (len(pager.received), len(backup.received)) == (1, 0)
    assert CriticalNotifier(store, router, metrics=metrics).sweep(now=t0 + 20) == 1
    assert pager.problems == backup.problems == []
    assert (len(pager.received), len(backup.received)) == (1, 1)
    assert backup.received[0]["notice_id"] == pager.received[0]["notice_id"]
    alert = store.get_critical_alert(job_id)
    assert (alert.state, alert.notified_at) == ("notified", t0 + 20)  # the last one took it
    assert [_targets_sample(metrics, "pager", o) for o in ("took", "failed")] == [1, None]
    assert [_targets_sample(metrics, "backup", o) for o in ("took", "failed")] == [1, 2]
    assert metrics.get(m.CRITICAL_NOTICES_SENT) == 1
    lines = [record.getMessage() for record in caplog.records]
    assert f"job {job_id}: critical notice taken by pager" in lines
    assert f"job {job_id}: critical notice sent to backup (taken before by pager)" in lines
    for secret in (PATIENT_ID, NAME, "Doe", ISSUER):
        assert secret not in caplog.text

    # The escalation is another notice: every target gets it, once.
    assert CriticalNotifier(store, router).sweep(now=t0 + 20 + 15 * 60) == 1
    events = [[p["event"] for p in peer.received] for peer in (pager, backup)]
    assert events == [["critical-ecg", "critical-ecg-escalation"]] * 2


def test_a_target_removed_is_not_waited_for_and_one_added_gets_it(site, peers):
    """Between two tries routes.yaml drops the failing backup and names a third target:
    the retry goes to the third alone, and the notice counts as sent without the backup."""
    store, router, job_id, data = site
    peers["backup"].fail_next = 1
    t0 = _due(store, job_id)
    assert CriticalNotifier(store, router).sweep(now=t0) == 0
    (data / "routes.yaml").write_text(
        routes({n: peers[n] for n in ("pager", "third")}, ["pager", "third"])
    )
    assert router.reload_if_changed()
    assert CriticalNotifier(store, router).sweep(now=t0 + 10) == 1
    received = [len(peers[n].received) for n in ("pager", "backup", "third")]
    assert received == [1, 0, 1]
    assert store.get_critical_alert(job_id).state == "notified"


def test_a_target_whose_record_is_refused_is_not_paged_again_by_this_process(
    site, peers, request, caplog
):
    """The store refuses to record that the pager took the notice: the running notifier
    keeps it in memory (one ERROR line), does not page through it again while the backup
    recovers, and records it once the store takes it."""
    store, job_id, pager, backup, notifier, t0 = _pager_take_unrecorded(site, peers, request, 2)
    assert notifier.sweep(now=t0) == 0
    assert notifier.sweep(now=t0 + 10) == 0
    assert (len(pager.received), len(backup.received)) == (1, 0)
    [line] = [r.getMessage() for r in caplog.records if "but not recorded" in r.getMessage()]
    assert line.startswith(f"job {job_id}: critical notice taken by pager but not recorded")
    assert REFUSAL in line
    assert store.critical_targets_taken(job_id, False) == {}

    allow_updates(store, request, TARGETS_TABLE, event="INSERT")
    assert notifier.sweep(now=t0 + 20) == 1
    assert (len(pager.received), len(backup.received)) == (1, 1)
    assert store.critical_targets_taken(job_id, False) == {"pager": t0, "backup": t0 + 20}
    assert store.get_critical_alert(job_id).state == "notified"


def test_a_notice_one_target_took_is_escalated_while_another_keeps_failing(site, peers):
    """The pager took the notice; the backup never answers but 503. Nobody opens the
    report: escalate_after (15 min) after the page, the escalation goes out, though the
    first notice was given up on the backup after its 5 tries meanwhile (on the base, the
    notice stayed pending or dead and nobody was told again)."""
    store, router, job_id, _ = site
    pager, backup = peers["pager"], peers["backup"]
    backup.fail_next = 1000
    t0 = _due(store, job_id)
    for k in range(5):
        CriticalNotifier(store, router).sweep(now=t0 + 10 * k)
    assert store.get_critical_alert(job_id).state == "dead"
    assert CriticalNotifier(store, router).sweep(now=t0 + 15 * 60 - 1) == 0  # not yet
    CriticalNotifier(store, router).sweep(now=t0 + 15 * 60)
    assert [p["event"] for p in pager.received] == ["critical-ecg", "critical-ecg-escalation"]
    assert store.get_critical_alert(job_id).state == "escalating"  # the backup fails it


def test_a_report_opened_is_not_escalated_though_a_target_failed(site, peers):
    """The same, but a physician opens the report before escalate_after: no escalation,
    whether the first notice was still retried or given up on the backup."""
    store, router, job_id, _ = site
    peers["backup"].fail_next = 1000
    t0 = _due(store, job_id)
    for k in range(5):
        CriticalNotifier(store, router).sweep(now=t0 + 10 * k)
    assert store.acknowledge_critical(job_id, "dr-who", now=t0 + 60)
    CriticalNotifier(store, router).sweep(now=t0 + 15 * 60)
    assert [p["event"] for p in peers["pager"].received] == ["critical-ecg"]
    assert store.get_critical_alert(job_id).state == "dead"


@pytest.mark.parametrize("store_recovers", [False, True])
def test_a_report_opened_forgets_the_unrecorded_targets_and_pages_no_one_again(
    site, peers, request, caplog, store_recovers
):
    """The pager took the notice but the store refused its record; the backup keeps
    failing. A physician opens the report before the next try: the running notifier
    records the pager's take if the store takes it now, forgets it either way (on the
    base it kept it for as long as it ran, never recorded), and nobody is paged again,
    not at the retry, not at escalate_after."""
    caplog.set_level(logging.INFO, logger="gateway.notify.sweeper")
    store, job_id, pager, backup, notifier, t0 = _pager_take_unrecorded(site, peers, request, 1000)
    assert notifier.sweep(now=t0) == 0
    assert backup.fail_next == 999
    assert store.acknowledge_critical(job_id, "dr-who", now=t0 + 5)
    if store_recovers:
        allow_updates(store, request, TARGETS_TABLE, event="INSERT")
    for later in (10, 20, 15 * 60, 16 * 60):
        assert notifier.sweep(now=t0 + later) == 0
    assert (len(pager.received), backup.fail_next) == (1, 999)  # nobody paged again
    messages = [r.getMessage() for r in caplog.records]
    if store_recovers:
        assert store.critical_targets_taken(job_id, False) == {"pager": t0}
        assert f"job {job_id}: critical notice's target pager recorded" in messages
    else:
        assert store.critical_targets_taken(job_id, False) == {}
        forgotten = [line for line in messages if "forgotten" in line]
        assert forgotten == [
            f"job {job_id}: unrecorded targets pager forgotten: the report was opened"
        ]
    assert store.get_critical_alert(job_id).state == "closed"


def test_a_notice_given_up_whose_take_was_unrecorded_still_escalates(site, peers, request):
    """The pager took the notice but the store refused its record; the backup fails until
    the notice is given up. The store takes writes again a minute later: the pager's take
    is recorded then (with its real time) and the escalation goes out at escalate_after,
    nobody having opened the report. Before, giving up forgot the pager's take, and with
    no record nothing ever escalated."""
    store, job_id, pager, _, notifier, t0 = _pager_take_unrecorded(site, peers, request, 1000)
    for k in range(5):
        notifier.sweep(now=t0 + 10 * k)
    assert store.get_critical_alert(job_id).state == "dead"
    allow_updates(store, request, TARGETS_TABLE, event="INSERT")
    notifier.sweep(now=t0 + 60)
    assert store.critical_targets_taken(job_id, False) == {"pager": t0}
    notifier.sweep(now=t0 + 15 * 60)
    assert [p["event"] for p in pager.received] == ["critical-ecg", "critical-ecg-escalation"]
    assert store.get_critical_alert(job_id).state == "escalating"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_of_the_previous_schema_gains_the_record_of_targets(backend, request, tmp_path):
    """A store as the previous release left it (no critical_notice_targets), with a
    critical alert pending: opening it migrates it, and the alert's targets are recorded."""
    store = open_backend(backend, request, tmp_path)
    job_id = _done(store, "9.1", PATIENT, None)
    store.record_critical_alert(job_id, ["qtc-500"], now=1000.0)
    store.close()
    if backend == "sqlite":
        with sqlite3.connect(tmp_path / "gateway.sqlite3") as conn:
            conn.execute("DROP TABLE critical_notice_targets")
            conn.execute(f"PRAGMA user_version = {SQLITE_VERSION - 1}")
    else:
        with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
            conn.execute("DROP TABLE critical_notice_targets")
            conn.execute("UPDATE schema_version SET version = %s", (POSTGRES_VERSION - 1,))

    store = open_backend(backend, request, tmp_path)  # opening it migrates it
    try:
        expected = SQLITE_VERSION if isinstance(store, SqliteStore) else POSTGRES_VERSION
        assert store.schema_version == expected
        (alert,) = store.lease_due_critical_alerts(escalate_before=0.0, now=2000.0)
        assert alert.job_id == job_id and store.critical_targets_taken(job_id, False) == {}
        store.record_critical_target(job_id, False, "pager", now=2001.0)
        store.record_critical_target(job_id, False, "pager", now=2002.0)  # kept the first
        assert store.critical_targets_taken(job_id, False) == {"pager": 2001.0}
        assert store.critical_targets_taken(job_id, True) == {}
    finally:
        store.close()


def test_the_rest_of_the_targets_are_spared_once_the_report_is_opened(site, peers, caplog):
    """A physician opens the report while the pager receives the notice (the web view
    acknowledges it in the store): the backup, next in line, gets nothing, now or later,
    and no escalation follows."""
    caplog.set_level(logging.INFO, logger="gateway.notify.sweeper")
    store, router, job_id, _ = site
    pager, backup = peers["pager"], peers["backup"]
    pager.while_receiving = lambda: store.acknowledge_critical(job_id, "dr.cardio")
    t0 = _due(store, job_id)
    assert CriticalNotifier(store, router).sweep(now=t0) == 1
    assert (len(pager.received), len(backup.received)) == (1, 0)
    alert = store.get_critical_alert(job_id)
    assert (alert.state, alert.acknowledged_by) == ("closed", "dr.cardio")
    assert store.critical_targets_taken(job_id, False) == {"pager": t0}
    lines = [record.getMessage() for record in caplog.records]
    assert f"job {job_id}: critical notice not sent to backup: the report was opened" in lines
    for later in (t0 + 10, t0 + 3600):
        assert CriticalNotifier(store, router).sweep(now=later) == 0
    assert (len(pager.received), len(backup.received)) == (1, 0)


def test_a_store_that_cannot_say_whether_the_report_was_opened_does_not_stop_the_notice(
    site, peers, request, caplog
):
    """The report is opened while the pager receives, and the store then fails to read
    the alert (its table gone until the backup is reached): the backup is paged all the
    same, as a failed read must never hold back a critical notice."""
    store, router, job_id, _ = site
    pager, backup = peers["pager"], peers["backup"]

    def opened_and_unreadable() -> None:
        store.acknowledge_critical(job_id, "dr.cardio")
        rename_table(store, request, "critical_alerts", "critical_alerts_away")

    pager.while_receiving = opened_and_unreadable
    backup.while_receiving = lambda: rename_table(
        store, request, "critical_alerts_away", "critical_alerts"
    )
    assert CriticalNotifier(store, router).sweep(now=_due(store, job_id)) == 1
    assert (len(pager.received), len(backup.received)) == (1, 1)
    assert pager.problems == backup.problems == []
    [line] = [r.getMessage() for r in caplog.records if "whether the report was opened" in r.msg]
    assert line.startswith(f"job {job_id}: whether the report was opened is unknown (")
    assert "critical_alerts" in line and line.endswith("); sending on")  # the store's error
    for secret in (PATIENT_ID, NAME, "Doe", ISSUER):
        assert secret not in caplog.text
    assert store.get_critical_alert(job_id).state == "closed"
