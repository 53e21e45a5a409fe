"""The delivery sweeper and scheduler on a real store, with real peers: retries with
backoff, dead letters, order per patient, isolation between destinations."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import textwrap
import time
from datetime import timedelta
from email.utils import formatdate
from multiprocessing.connection import wait
from pathlib import Path

import pytest
from delivery_support import T0, enqueue, package
from example_reports import afib_report
from peers import FhirTestServer, Hl7TestPeer

from gateway.cli import main
from gateway.delivery.hl7 import control_id
from gateway.delivery.sweeper import DeliverySweeper, retry_delay
from gateway.routing import RetryPolicy, Router
from gateway.scheduler import GatewayScheduler
from gateway.store import SqliteStore, Store


class Clock:
    """Time the test moves forward, so backoff of minutes takes no real time."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path):
    store = SqliteStore(data_dir / "gateway.sqlite3")
    yield store
    store.close()


@pytest.fixture
def fhir_server():
    server = FhirTestServer().start()
    yield server
    server.stop()


def _routes(
    data_dir: Path, destinations: str, rules: str = "[]", default: str = "[outbox]"
) -> Path:
    """A routes file with an `outbox` file destination plus `destinations` (YAML text)."""
    extra = textwrap.indent(textwrap.dedent(destinations).strip(), "  ")
    path = data_dir.parent / "routes.yaml"
    path.write_text(
        f"destinations:\n  outbox: {{type: file, directory: outbox}}\n{extra}\n"
        f"rules: {rules}\ndefault: {default}\n"
    )
    return path


def _ehr_routes(
    data_dir: Path, fhir_server: FhirTestServer, settings: str = "", default: str = "[ehr]"
) -> Path:
    """`_routes` with the test FHIR server as destination `ehr`; `settings` adds to its
    entry (YAML flow text such as "timeout_s: 2")."""
    entry = f"type: fhir, endpoint: '{fhir_server.base_url}'"
    if settings:
        entry += f", {settings}"
    return _routes(data_dir, f"ehr: {{{entry}}}", default=default)


def _outbox_deliveries(
    shared_data: Path, data_dir: Path, store: Store, count: int, dead: tuple[int, ...]
) -> None:
    """`count` ECGs queued for a file destination, the deliveries of ids `dead` given up."""
    router = Router(
        _routes(data_dir, "out: {type: file, directory: out}", default="[out]"), data_dir
    )
    for index in range(count):
        enqueue(store, router, data_dir, package(shared_data, uid_suffix=str(index)))
    for delivery_id in dead:
        store.mark_delivery_dead(delivery_id, "test: given up")


def _states(store: Store, destination: str | None = None) -> list[str]:
    return [d.state for d in store.list_deliveries() if destination in (None, d.destination)]


def test_retry_delay_is_exponential_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(backoff_base=timedelta(seconds=10), backoff_cap=timedelta(minutes=5))
    rng = random.Random(7)
    for failures, step in ((1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (40, 300)):
        delays = [retry_delay(policy, failures, rng) for _ in range(200)]
        assert step / 2 <= min(delays) and max(delays) <= step
        assert max(delays) - min(delays) > step / 4  # really jittered
    assert retry_delay(policy, 10_000, rng) <= 300


def test_ehr_down_then_up_every_report_once_and_in_order_per_patient(
    shared_data: Path, data_dir: Path, store: Store, fhir_server: FhirTestServer
) -> None:
    routes = _ehr_routes(
        data_dir,
        fhir_server,
        "timeout_s: 2, retry: {max_attempts: 50, backoff_base: 5s, backoff_cap: 40s}",
        default="[ehr, outbox]",
    )
    router = Router(routes, data_dir)
    clock = Clock()
    sweeper = DeliverySweeper(store, router, clock=clock, rng=random.Random(1))
    expected: dict[str, list[str]] = {}
    for index in range(8):
        patient = f"PAT-{index % 3}"
        pkg = package(
            shared_data,
            uid_suffix=str(index),
            patient_id=patient,
            report=afib_report() if index % 2 else None,
        )
        enqueue(store, router, data_dir, pkg, now=clock())
        expected.setdefault(patient, []).append(f"urn:oid:{pkg.metadata.sop_instance_uid}")
    fhir_server.fail_status = 503
    try:
        for _ in range(12):
            sweeper.sweep()
            clock.now += 20
        assert _states(store, "outbox") == ["sent"] * 8  # the file outbox never waited
        assert "sent" not in _states(store, "ehr")
        assert fhir_server.requests >= 6
        fhir_server.fail_status = None
        for _ in range(20):
            sweeper.sweep()
            clock.now += 20
    finally:
        sweeper.close()
    assert _states(store) == ["sent"] * 16
    assert sorted(fhir_server.report_arrivals) == sorted(u for us in expected.values() for u in us)
    for uids in expected.values():
        assert [u for u in fhir_server.report_arrivals if u in uids] == uids
    assert len(fhir_server.resources("Patient")) == 3
    assert max(d.attempts for d in store.list_deliveries()) > 2


def test_resends_to_hl7_carry_the_same_control_id_until_acknowledged(
    shared_data: Path, data_dir: Path, store: Store
) -> None:
    peer = Hl7TestPeer(["AE", "AE", "drop"]).start()
    try:
        routes = _routes(
            data_dir,
            f"""
            ris:
              type: hl7
              endpoint: mllp://127.0.0.1:{peer.port}
              timeout_s: 2
              retry: {{backoff_base: 1s, backoff_cap: 4s}}
            """,
            default="[ris]",
        )
        router = Router(routes, data_dir)
        clock = Clock()
        sweeper = DeliverySweeper(store, router, clock=clock)
        pkg = package(shared_data, report=afib_report())
        enqueue(store, router, data_dir, pkg, now=clock())
        for _ in range(4):
            sweeper.sweep()
            clock.now += 10
        sweeper.close()
    finally:
        peer.stop()
    # Two AEs are failed tries; the drop came on a reused connection, which looks
    # like an idle connection closed by the peer, so it was sent again at once: 3 tries
    [delivery] = store.list_deliveries()
    assert (delivery.state, delivery.attempts) == ("sent", 3)
    sent_ids = {str(message.segment("MSH")[10]) for message in peer.received}
    assert sent_ids == {control_id(pkg, "ris")} and len(peer.received) == 4


def test_deliveries_list_pages_newest_first_and_counts_them_all(
    shared_data: Path, data_dir: Path, store: Store, capsys
) -> None:
    _outbox_deliveries(shared_data, data_dir, store, count=5, dead=(1, 2))

    def listed(*options: str) -> tuple[list[int], str]:
        assert main(["deliveries", "list", *options, "--data-dir", str(data_dir)]) == 0
        out = capsys.readouterr().out
        ids = [int(line.split()[0]) for line in out.splitlines()[1:] if line[:6].strip().isdigit()]
        return ids, out

    ids, out = listed("--limit", "2")
    assert ids == [5, 4] and "deliveries: dead 2, pending 3" in out
    assert out.rstrip().endswith("showing 2; older ones: --before 4")
    ids, out = listed("--limit", "2", "--before", "4")
    assert ids == [3, 2] and "deliveries: dead 2, pending 3" in out
    ids, out = listed("--limit", "2", "--before", "2")
    assert ids == [1] and "older ones" not in out
    ids, out = listed("--dead", "--limit", "1")
    assert ids == [2] and "deliveries: dead 2\n" in out and "--before 2" in out


def test_an_hl7_application_reject_is_dead_at_once_with_its_reason(
    shared_data: Path, data_dir: Path, store: Store
) -> None:
    """AR: the receiver refuses this message as it is; resending it unchanged for days
    would only repeat the refusal."""
    peer = Hl7TestPeer(["AR"]).start()
    try:
        routes = _routes(
            data_dir,
            f"ris: {{type: hl7, endpoint: 'mllp://127.0.0.1:{peer.port}', timeout_s: 2}}",
            default="[ris]",
        )
        router = Router(routes, data_dir)
        sweeper = DeliverySweeper(store, router, clock=Clock())
        enqueue(store, router, data_dir, package(shared_data, uid_suffix="1"))
        enqueue(store, router, data_dir, package(shared_data, uid_suffix="2", patient_id="P2"))
        sweeper.sweep()
        sweeper.close()
    finally:
        peer.stop()
    rejected, next_one = store.list_deliveries()
    assert (rejected.state, rejected.attempts) == ("dead", 1)
    assert rejected.last_error.startswith("rejected, resending cannot succeed: ")
    assert "rejected AR" in rejected.last_error
    assert next_one.state == "sent"


def test_a_message_over_max_message_mb_is_dead_at_once_and_not_sent(
    shared_data: Path, data_dir: Path, store: Store
) -> None:
    peer = Hl7TestPeer().start()
    try:
        endpoint = f"mllp://127.0.0.1:{peer.port}"
        routes = _routes(
            data_dir,
            f"""
            ris: {{type: hl7, endpoint: '{endpoint}', timeout_s: 2, max_message_mb: 0.05}}
            big: {{type: hl7, endpoint: '{endpoint}', timeout_s: 2}}
            """,
            default="[ris, big]",
        )
        router = Router(routes, data_dir)
        assert router.destination("big").max_message_mb == 20  # the default
        sweeper = DeliverySweeper(store, router, clock=Clock())
        enqueue(store, router, data_dir, package(shared_data))  # with a PDF of the ECG
        sweeper.sweep()
        sweeper.close()
    finally:
        peer.stop()
    too_big, sent = store.list_deliveries()
    assert (too_big.destination, too_big.state, sent.state) == ("ris", "dead", "sent")
    assert too_big.last_error.startswith("rejected, resending cannot succeed: the message is ")
    assert too_big.last_error.endswith("MB, over the destination's max_message_mb of 0.05")
    assert len(peer.received) == 1


def test_dead_after_max_attempts_listed_and_retried_from_the_cli(
    shared_data: Path, data_dir: Path, store: Store, fhir_server: FhirTestServer, capsys
) -> None:
    routes = _ehr_routes(
        data_dir, fhir_server, "retry: {max_attempts: 2, backoff_base: 1s, backoff_cap: 1s}"
    )
    router = Router(routes, data_dir)
    clock = Clock()
    sweeper = DeliverySweeper(store, router, clock=clock)
    enqueue(store, router, data_dir, package(shared_data), now=clock())
    fhir_server.fail_status = 503
    sweeper.sweep()
    assert _states(store) == ["failed"]
    clock.now += 5
    sweeper.sweep()
    [dead] = store.list_deliveries(dead_only=True)
    assert dead.last_error.startswith("gave up after 2 tries: POST transaction")
    assert main(["deliveries", "list", "--dead", "--data-dir", str(data_dir)]) == 0
    listing = capsys.readouterr().out
    assert f"{dead.id:>6}  dead    ehr" in listing and "HTTP 503" in listing
    assert "000001" not in listing  # no patient ID, only UIDs
    fhir_server.fail_status = None
    assert main(["deliveries", "retry", str(dead.id), "--data-dir", str(data_dir)]) == 0
    assert main(["deliveries", "retry", "999", "--data-dir", str(data_dir)]) == 1
    sweeper.sweep()
    sweeper.close()
    assert _states(store) == ["sent"]
    assert len(fhir_server.resources("DiagnosticReport")) == 1


def test_retry_all_dead_from_the_cli(
    shared_data: Path, data_dir: Path, store: Store, capsys
) -> None:
    _outbox_deliveries(shared_data, data_dir, store, count=3, dead=(1, 2, 3))
    assert main(["deliveries", "retry", "--all-dead", "--data-dir", str(data_dir)]) == 0
    assert "requeued 3 dead deliveries" in capsys.readouterr().out
    assert _states(store) == ["pending"] * 3


def test_a_rejected_report_is_dead_at_once_and_the_next_one_still_goes(
    shared_data: Path, data_dir: Path, store: Store, fhir_server: FhirTestServer
) -> None:
    routes = _ehr_routes(data_dir, fhir_server)
    router = Router(routes, data_dir)
    sweeper = DeliverySweeper(store, router, clock=Clock())
    enqueue(store, router, data_dir, package(shared_data, uid_suffix="1"))
    enqueue(store, router, data_dir, package(shared_data, uid_suffix="2", patient_id="OTHER"))
    fhir_server.fail_status = 422
    fhir_server.fail_message = "DiagnosticReport rejected by profile"
    sweeper.sweep()
    assert _states(store) == ["dead", "dead"]  # a content rejection does not stop the sweep
    assert store.list_deliveries()[0].last_error.startswith("rejected, resending cannot succeed")


# What a FHIR server's OperationOutcome may quote of the patient, in its own formats.
QUOTED_PATIENT = (
    "Patient mrn-4471 (QUINTON, Arabella; identifier MRN-4471) born 1920-01-01 conflicts with "
    "existing Patient born 19200101 / 01.01.1920 / 01/01/1920 / 1 Jan 1920 / "
    "January 1, 1920 / 1920-01-01T00:00:00Z"
)


def test_what_a_destination_quotes_of_the_patient_reaches_no_store_listing_or_log(
    shared_data: Path, data_dir: Path, store: Store, fhir_server: FhirTestServer, capsys, caplog
) -> None:
    router = Router(_ehr_routes(data_dir, fhir_server), data_dir)
    sweeper = DeliverySweeper(store, router, clock=Clock())
    pkg = package(
        shared_data,
        patient_id="MRN-4471",
        patient_name="Quinton^Arabella",
        patient_birth_date="19200101",
    )
    enqueue(store, router, data_dir, pkg)
    fhir_server.fail_status = 422
    fhir_server.fail_message = QUOTED_PATIENT
    with caplog.at_level(logging.DEBUG):
        sweeper.sweep()
    sweeper.close()
    [delivery] = store.list_deliveries()
    assert main(["deliveries", "list", "--data-dir", str(data_dir)]) == 0
    listing = capsys.readouterr().out
    assert "conflicts with existing Patient born ***" in delivery.last_error  # still useful
    for text in (delivery.last_error, listing, caplog.text):
        assert "HTTP 422" in text
        for quoted in ("4471", "quinton", "arabella", "1920"):
            assert quoted not in text.lower()


@pytest.mark.parametrize(
    ("status", "retry_after", "retry", "expected_s"),
    [
        (503, "120", "{backoff_base: 1s}", 120),  # not the 0.5 to 1 s backoff
        (429, "in 3 h", "{backoff_cap: 1h}", 3600),  # an HTTP-date, capped by backoff_cap
        (503, "7200", "{max_age: 30m}", 1800),  # ... and by max_age: one last try at the end
    ],
)
def test_a_fhir_servers_retry_after_sets_the_next_try(
    shared_data: Path,
    data_dir: Path,
    store: Store,
    fhir_server: FhirTestServer,
    status: int,
    retry_after: str,
    retry: str,
    expected_s: float,
) -> None:
    if retry_after == "in 3 h":
        retry_after = formatdate(time.time() + 3 * 3600, usegmt=True)
    routes = _ehr_routes(data_dir, fhir_server, f"retry: {retry}")
    router = Router(routes, data_dir)
    clock = Clock()
    sweeper = DeliverySweeper(store, router, clock=clock)
    enqueue(store, router, data_dir, package(shared_data), now=clock())
    fhir_server.fail_status, fhir_server.retry_after = status, retry_after
    assert sweeper.sweep().failed == 1
    sweeper.close()
    [delivery] = store.list_deliveries()
    assert delivery.next_attempt_at - clock() == pytest.approx(expected_s, abs=2)


def test_too_old_is_dead_and_missing_package_is_dead(
    shared_data: Path, data_dir: Path, store: Store, fhir_server: FhirTestServer
) -> None:
    routes = _ehr_routes(data_dir, fhir_server, "retry: {max_age: 1h}")
    router = Router(routes, data_dir)
    clock = Clock()
    sweeper = DeliverySweeper(store, router, clock=clock)
    enqueue(store, router, data_dir, package(shared_data, uid_suffix="1"), now=clock())
    fhir_server.fail_status = 503
    clock.now += 2 * 3600
    sweeper.sweep()
    assert store.list_deliveries()[0].last_error.startswith("gave up after 2.0 h (max_age)")
    job = enqueue(
        store, router, data_dir, package(shared_data, uid_suffix="2", patient_id="P2"), now=clock()
    )
    for path in (data_dir / "reports" / str(job)).iterdir():
        path.unlink()
    sweeper.sweep()
    assert store.list_deliveries()[1].state == "dead"
    assert "cannot read the report package" in store.list_deliveries()[1].last_error


def test_deliveries_for_a_removed_destination_fail_visibly(
    shared_data: Path, data_dir: Path, store: Store
) -> None:
    routes = _routes(data_dir, "old: {type: file, directory: old}", default="[old]")
    router = Router(routes, data_dir)
    enqueue(store, router, data_dir, package(shared_data))
    _routes(data_dir, "new: {type: file, directory: new}", default="[new]")
    assert router.reload_if_changed()
    sweeper = DeliverySweeper(store, router, clock=Clock())
    assert sweeper.sweep_unrouted().failed == 1
    [delivery] = store.list_deliveries()
    assert delivery.state == "failed"
    assert delivery.last_error == "destination 'old' is not in the routes file"


def _wait_for(condition, timeout_s: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
    return time.monotonic() - started


def test_scheduler_sweeps_destinations_independently_and_follows_reloads(
    shared_data: Path, data_dir: Path, store: Store, fhir_server: FhirTestServer
) -> None:
    fhir_server.delay_s = 5  # an EHR that hangs: each try waits for the timeout
    routes = _ehr_routes(data_dir, fhir_server, "timeout_s: 4", default="[ehr, outbox]")
    router = Router(routes, data_dir)
    for index in range(5):
        enqueue(
            store,
            router,
            data_dir,
            package(shared_data, uid_suffix=str(index), patient_id=f"P{index}"),
            now=time.time(),
        )
    scheduler = GatewayScheduler(
        store,
        router,
        DeliverySweeper(store, router),
        retention_days=30,
        sweep_interval_s=0.1,
        reload_interval_s=0.1,
    )
    scheduler.start()
    try:
        waited = _wait_for(lambda: _states(store, "outbox") == ["sent"] * 5, 5)
        assert waited < 3.5  # not behind the hanging EHR's 4 s timeout
        ehr = [d for d in store.list_deliveries() if d.destination == "ehr"]
        assert [d.attempts for d in ehr] == [0] * 5  # its first try is still waiting
        routes.write_text(
            routes.read_text()
            .replace(
                "rules: []",
                "rules: [{name: afib, match: {statement_codes: AFIB}, destinations: [urgent]}]",
            )
            .replace(
                "destinations:\n", "destinations:\n  urgent: {type: file, directory: urgent}\n", 1
            )
        )
        _wait_for(lambda: router.destination("urgent") is not None, 3)
        enqueue(
            store,
            router,
            data_dir,
            package(shared_data, uid_suffix="9", patient_id="P9", report=afib_report()),
            now=time.time(),
        )
        _wait_for(lambda: _states(store, "urgent") == ["sent"], 3)
    finally:
        scheduler.shutdown()
    assert len(list((data_dir / "urgent").glob("*.hl7"))) == 1


def test_retention_removes_old_finished_work_only(
    shared_data: Path, data_dir: Path, store: Store
) -> None:
    routes = _routes(
        data_dir,
        "held: {type: file, directory: held}",
        rules="[{name: p2, match: {statement_codes: AFIB}, destinations: [held]}]",
    )
    router = Router(routes, data_dir)
    old = time.time() - 40 * 86400
    finished = enqueue(store, router, data_dir, package(shared_data, uid_suffix="1"), now=old)
    waiting = enqueue(
        store,
        router,
        data_dir,
        package(shared_data, uid_suffix="2", patient_id="P2", report=afib_report()),
        now=old,
    )
    for delivery in store.list_deliveries():
        if delivery.job_id == finished:
            store.mark_delivery_sent(delivery.id, now=old)
    outbox = data_dir / "outbox"
    outbox.mkdir()
    (outbox / "old.hl7").write_text("old")
    os.utime(outbox / "old.hl7", (old, old))
    (outbox / "new.hl7").write_text("new")
    scheduler = GatewayScheduler(store, router, DeliverySweeper(store, router), retention_days=30)
    result = scheduler.purge()
    assert (result.jobs, result.outbox_files) == (1, 1)
    assert sorted(p.name for p in outbox.iterdir()) == ["new.hl7"]
    assert not (data_dir / "reports" / str(finished)).exists()
    assert (data_dir / "reports" / str(waiting)).exists()
    spools = {job.id: job.spool_path for job in store.list_jobs()}
    assert spools[finished] == "" and Path(spools[waiting]).exists()
    assert scheduler.purge().jobs == 0


def test_a_finished_report_is_delivered_at_once_not_at_the_next_interval(
    shared_data: Path, data_dir: Path, store: Store
) -> None:
    router = Router(_routes(data_dir, ""), data_dir)
    scheduler = GatewayScheduler(
        store, router, DeliverySweeper(store, router), retention_days=30, sweep_interval_s=600
    )
    scheduler.start()
    try:
        time.sleep(0.2)  # the first interval sweep is 600 s away
        enqueue(store, router, data_dir, package(shared_data), now=time.time())
        assert _states(store) == ["pending"]
        scheduler.deliver_soon(["outbox"])
        assert _wait_for(lambda: _states(store) == ["sent"], 3) < 2
    finally:
        scheduler.shutdown()


def test_a_wake_up_after_a_sweeps_last_lease_gets_one_more_pass(
    shared_data: Path, data_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a wake-up must not lose: the sweep has found nothing more due, and a
    report is finished before the sweep has ended."""
    router = Router(_routes(data_dir, ""), data_dir)
    sweeper = DeliverySweeper(store, router)
    real_lease = store.lease_due_deliveries
    late = package(shared_data, uid_suffix="late", patient_id="P2")
    woken = []

    def lease_then_finish_another(**kwargs):
        leased = real_lease(**kwargs)
        if not leased and not woken:
            enqueue(store, router, data_dir, late, now=time.time())
            woken.append(sweeper.wake("outbox"))
        return leased

    monkeypatch.setattr(store, "lease_due_deliveries", lease_then_finish_another)
    enqueue(store, router, data_dir, package(shared_data), now=time.time())
    assert sweeper.wake("outbox") is True  # no sweep running: the caller starts one
    assert sweeper.sweep_destination("outbox").sent == 2
    assert woken == [False]  # the running sweep took it, no second sweep was needed
    assert _states(store) == ["sent", "sent"]


def test_a_formatting_process_builds_the_messages_and_its_death_is_a_retry(
    shared_data: Path, data_dir: Path, store: Store, fhir_server: FhirTestServer
) -> None:
    routes = _ehr_routes(data_dir, fhir_server, default="[ehr, outbox]")
    router = Router(routes, data_dir)
    clock = Clock()
    sweeper = DeliverySweeper(store, router, clock=clock, formatting_process=True)
    try:
        formatter_pid = sweeper._formatter.submit(os.getpid).result()
        assert formatter_pid != os.getpid()
        enqueue(store, router, data_dir, package(shared_data, uid_suffix="1"))
        assert sweeper.sweep().sent == 2
        [bundle] = fhir_server.transactions
        assert bundle["resourceType"] == "Bundle" and not fhir_server.rejections
        uid = package(shared_data, uid_suffix="1").sop_instance_uid
        assert (data_dir / "outbox" / f"{uid}.hl7").read_bytes().startswith(b"MSH|^~\\&|")

        broken = enqueue(store, router, data_dir, package(shared_data, uid_suffix="2"))
        (data_dir / "reports" / str(broken) / "report.json").write_text("{not json")
        os.kill(formatter_pid, signal.SIGKILL)
        sweeper.sweep()
        first = next(d for d in store.list_deliveries() if d.job_id == broken)
        assert (first.state, first.last_error) == (
            "failed",
            "the formatting process died; trying again",
        )
        clock.now += 3600
        sweeper.sweep()  # a new formatting process: the package's own fault shows now
        dead = [d for d in store.list_deliveries() if d.job_id == broken]
        assert [d.state for d in dead] == ["dead", "dead"]
        assert all("cannot read the report package" in d.last_error for d in dead)
    finally:
        sweeper.close()


def test_a_destination_removed_by_a_routes_reload_has_its_writing_process_stopped(
    shared_data: Path, data_dir: Path, store: Store
) -> None:
    """A file destination's writing process belongs to it: when a reload removes the
    destination, that process exits (no process left per removed destination)."""
    routes = _routes(data_dir, "drop: {type: file, directory: drop}", default="[outbox, drop]")
    router = Router(routes, data_dir)
    sweeper = DeliverySweeper(store, router)
    scheduler = GatewayScheduler(store, router, sweeper, retention_days=30)
    before = set(multiprocessing.active_children())
    try:
        enqueue(store, router, data_dir, package(shared_data), now=time.time())
        assert sweeper.sweep_destination("drop").sent == 1
        [writer] = set(multiprocessing.active_children()) - before  # drop's writing process
        assert sweeper.sweep_destination("outbox").sent == 1
        outbox_writer = set(multiprocessing.active_children()) - before - {writer}
        _routes(data_dir, "")  # the routes file rewritten without drop
        assert scheduler.reload_routes()
        # The sentinel, not exitcode: the pool's own thread reaps the killed process too,
        # and a join racing it can read None from a process already gone.
        assert wait([writer.sentinel], timeout=10), "the removed destination's writer still runs"
        assert all(p.is_alive() for p in outbox_writer)  # the one still routed stays
    finally:
        sweeper.close()
