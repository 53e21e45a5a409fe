"""The store: idempotent intake, leases that survive crashes, exactly-once hand-off to
delivery, and per-patient delivery order. Real SQLite files in a temp directory."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from gateway.store import NewJob, SqliteStore, Store, StoreError
from gateway.store.schema import SCHEMA_VERSION
from tests.old_stores import SQLITE_SCHEMA_V1

T0 = 1_000_000.0
OBJECT = b"DICM-file-bytes"  # what a store that keeps objects (PostgreSQL) is given


def _job(uid: str = "1.2.3.4", sha: str = "a" * 64, **changes: str) -> NewJob:
    values = {
        "sop_instance_uid": uid,
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.9.1.1",
        "content_sha256": sha,
        "spool_path": f"/spool/{uid}.dcm",
        "kind": "ecg-waveform",
        "calling_ae": "CART",
        "called_ae": "ECGGW",
        "peer": "127.0.0.1:1000",
    }
    values.update(changes)
    return NewJob(**values)


def open_backend(backend: str, request: pytest.FixtureRequest, tmp_path, node: str = "node-a"):
    """A store of `backend` in `tmp_path` or on the session's PostgreSQL server."""
    if backend == "sqlite":
        return SqliteStore(tmp_path / "gateway.sqlite3")
    from gateway.store.postgres import PostgresStore

    url = request.getfixturevalue("postgres_url")
    return PostgresStore(url, tmp_path / f"cache-{node}", node=node)


def _add(store: Store, number: int, patient_key: str) -> int:
    """Job `1.<number>` of a patient, received at T0; its id."""
    new = _job(uid=f"1.{number}", sha=f"{number}" * 64, patient_key=patient_key)
    return store.add_job(new, now=T0, content=OBJECT).job_id


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same semantics are asked of both backends."""
    s = open_backend(request.param, request, tmp_path)
    yield s
    s.close()


def test_store_uses_wal_and_full_sync(tmp_path):
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    [(journal,)] = store._query("PRAGMA journal_mode")  # the store's own connection's
    [(synchronous,)] = store._query("PRAGMA synchronous")
    assert (journal, synchronous) == ("wal", 2)  # 2 = FULL
    store.close()


def test_same_uid_and_content_is_a_duplicate_new_content_a_correction(store):
    first = store.add_job(_job(sha="a" * 64), now=T0, content=OBJECT)
    again = store.add_job(_job(sha="a" * 64), now=T0 + 1, content=OBJECT)
    changed = store.add_job(_job(sha="b" * 64), now=T0 + 2, content=OBJECT)
    assert not first.duplicate and not first.is_correction
    assert again.duplicate and again.job_id == first.job_id
    assert not changed.duplicate and changed.is_correction and changed.job_id != first.job_id
    assert [j.is_correction for j in store.jobs_for_uid("1.2.3.4")] == [False, True]
    assert store.find_job("1.2.3.4", "b" * 64).id == changed.job_id


def test_new_content_after_a_failed_job_is_not_a_correction(store):
    failed = store.add_job(_job(sha="a" * 64), now=T0, content=OBJECT)
    store.lease_job("w", 60, 3, now=T0)
    store.fail_job(failed.job_id, "w", "undecodable", now=T0)
    assert not store.add_job(_job(sha="b" * 64), now=T0, content=OBJECT).is_correction


def test_lease_takes_oldest_and_each_job_once(store):
    ids = [
        store.add_job(_job(uid=f"1.2.{i}", sha=f"{i}" * 64), now=T0, content=OBJECT).job_id
        for i in range(3)
    ]
    leased = [store.lease_job(f"w{i}", 60, 3, now=T0) for i in range(4)]
    assert [j.id for j in leased[:3]] == ids
    assert leased[3] is None
    assert all(j.state == "leased" and j.attempts == 1 for j in leased[:3])


def test_expired_lease_is_retaken_and_old_owner_cannot_complete(store):
    job_id = store.add_job(_job(), now=T0, content=OBJECT).job_id
    assert store.lease_job("crashed", 60, 3, now=T0).id == job_id
    assert store.lease_job("other", 60, 3, now=T0 + 59) is None
    retaken = store.lease_job("other", 60, 3, now=T0 + 61)
    assert retaken.id == job_id and retaken.attempts == 2
    assert not store.complete_job(job_id, "crashed", "/r/1", [("outbox", "p:1")], now=T0 + 62)
    assert store.complete_job(job_id, "other", "/r/1", [("outbox", "p:1")], now=T0 + 62)
    assert [(d.job_id, d.destination) for d in store.list_deliveries()] == [(job_id, "outbox")]


def test_job_whose_lease_keeps_expiring_is_failed(store):
    job_id = store.add_job(_job(), now=T0, content=OBJECT).job_id
    for attempt in range(3):
        assert store.lease_job("w", 10, 3, now=T0 + attempt * 20) is not None
    assert store.lease_job("w", 10, 3, now=T0 + 100) is None  # not retaken a 4th time
    assert store.fail_overdue_jobs(3, now=T0 + 49) == []  # its lease has not run out
    [failed] = store.fail_overdue_jobs(3, now=T0 + 100)  # returned, to be logged
    job = store.get_job(job_id)
    assert failed.id == job_id and job.state == "failed" and "3 attempts" in job.error


def test_complete_job_adds_deliveries_in_the_same_transaction(store):
    job_id = store.add_job(_job(), now=T0, content=OBJECT).job_id
    store.lease_job("w", 60, 3, now=T0)
    store.complete_job(job_id, "w", "/r/1", [("outbox", "k"), ("ehr", "k")], now=T0)
    store.complete_job(job_id, "w", "/r/1", [("outbox", "k")], now=T0)  # lease gone: no-op
    job = store.get_job(job_id)
    assert job.state == "done" and job.report_dir == "/r/1" and job.lease_owner is None
    assert sorted(d.destination for d in store.list_deliveries()) == ["ehr", "outbox"]


def test_complete_job_rolls_back_when_deliveries_cannot_be_written(store):
    job_id = store.add_job(_job(), now=T0, content=OBJECT).job_id
    store.lease_job("w", 60, 3, now=T0)
    with pytest.raises(StoreError):
        store.complete_job(job_id, "w", "/r/1", [("outbox", None)], now=T0)  # NOT NULL
    assert store.get_job(job_id).state == "leased"
    assert store.list_deliveries() == []


def test_retry_later_release_and_retry_failed(store):
    job_id = store.add_job(_job(), now=T0, content=OBJECT).job_id
    store.lease_job("w", 60, 3, now=T0)
    assert store.retry_job_later(job_id, "w", "disk hiccup", available_at=T0 + 30, now=T0)
    assert store.lease_job("w", 60, 3, now=T0 + 29) is None
    assert store.lease_job("w", 60, 3, now=T0 + 30).attempts == 2
    assert store.release_job(job_id, "w", now=T0 + 31)
    assert store.get_job(job_id).attempts == 1  # a shutdown is not an attempt
    store.lease_job("w", 60, 3, now=T0 + 31)
    store.fail_job(job_id, "w", "undecodable: bad", now=T0 + 32)
    assert store.count_jobs() == {"failed": 1}
    assert store.retry_failed_jobs("1.2.3.4", now=T0 + 40) == 1
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.error) == ("queued", 0, None)


def test_restarts_never_use_up_attempts(store):
    """A kill -9 during a job is not the job's fault: however often it happens, the job
    is requeued with the attempts it had (it used to fail after max_attempts restarts)."""
    job_id = store.add_job(_job(uid="1.1"), now=T0, content=OBJECT).job_id
    for restart in range(1, 6):
        # a lease of this node's previous run (a shared store recovers only those)
        dead = f"{store.node}:dead-process"
        assert store.lease_job(dead, 300, 3, now=T0 + restart).attempts == 1
        assert store.recover_after_restart(now=T0 + restart) == 1
        job = store.get_job(job_id)
        assert (job.state, job.attempts, job.lease_owner) == ("queued", 0, None)
    assert store.lease_job("new-process", 300, 3, now=T0 + 9).id == job_id


def test_a_job_whose_worker_process_dies_fails_after_max_deaths(store):
    job_id = store.add_job(_job(uid="1.1"), now=T0, content=OBJECT).job_id
    assert store.record_worker_death(job_id, "nobody", 3, T0, now=T0) is None  # not leased
    for death in (1, 2):
        store.lease_job("w", 300, 3, now=T0 + death * 10)
        assert store.record_worker_death(job_id, "w", 3, T0 + death * 10 + 5) == "queued"
        job = store.get_job(job_id)
        assert (job.worker_deaths, job.attempts, job.state) == (death, 0, "queued")
        assert store.lease_job("w", 300, 3, now=T0 + death * 10 + 4) is None  # waits
    store.lease_job("w", 300, 3, now=T0 + 30)
    assert store.record_worker_death(job_id, "w", 3, T0 + 40, now=T0 + 30) == "failed"
    job = store.get_job(job_id)
    assert (job.state, job.worker_deaths) == ("failed", 3)
    assert job.error == "the worker process died each of the 3 times it processed this object"


def _delivered_job(store: Store, uid: str, deliveries: list[tuple[str, str]]) -> int:
    job_id = store.add_job(
        _job(uid=uid, sha=uid.replace(".", "") * 8), now=T0, content=OBJECT
    ).job_id
    store.lease_job("w", 60, 3, now=T0)
    store.complete_job(job_id, "w", f"/r/{job_id}", deliveries, now=T0)
    return job_id


def test_deliveries_keep_patient_order_per_destination(store):
    _delivered_job(store, "1.1", [("ehr", "p:A"), ("outbox", "p:A")])
    _delivered_job(store, "1.2", [("ehr", "p:A"), ("outbox", "p:A")])
    _delivered_job(store, "1.3", [("ehr", "p:B")])
    due = store.lease_due_deliveries(now=T0, limit=10, lease_s=60)
    # p:A's second report waits for its first at each destination; p:B is independent.
    assert [(d.sop_instance_uid, d.destination) for d in due] == [
        ("1.1", "ehr"),
        ("1.1", "outbox"),
        ("1.3", "ehr"),
    ]
    assert store.lease_due_deliveries(now=T0 + 1) == []  # all leased
    first_ehr, first_outbox = due[0], due[1]
    store.mark_delivery_failed(first_ehr.id, "503", next_attempt_at=T0 + 100, now=T0 + 1)
    store.mark_delivery_sent(first_outbox.id, now=T0 + 1)
    store.mark_delivery_sent(due[2].id, now=T0 + 1)
    due = store.lease_due_deliveries(now=T0 + 2)
    assert [(d.sop_instance_uid, d.destination) for d in due] == [("1.2", "outbox")]
    store.mark_delivery_sent(due[0].id, now=T0 + 3)
    due = store.lease_due_deliveries(now=T0 + 100)
    assert [(d.sop_instance_uid, d.destination, d.attempts) for d in due] == [("1.1", "ehr", 1)]


def test_a_patients_deliveries_go_in_receipt_order_whatever_order_jobs_finish(store):
    """A long recording received first finishes after a short one received next: the
    short one's delivery waits for it, at every destination; another patient does not."""
    long_a, short_a, failed_a = (_add(store, i, "p:A") for i in (1, 2, 3))
    other_b, later_a = (_add(store, i, key) for i, key in ((4, "p:B"), (5, "p:A")))
    for job_id in (long_a, short_a, failed_a, other_b, later_a):
        assert store.lease_job(f"w{job_id}", 300, 3, now=T0).id == job_id
    for job_id, key in ((short_a, "p:A"), (other_b, "p:B")):
        store.complete_job(job_id, f"w{job_id}", "/r", [("ehr", key), ("outbox", key)], now=T0)
    due = store.lease_due_deliveries(now=T0)
    assert [(d.job_id, d.destination) for d in due] == [(other_b, "ehr"), (other_b, "outbox")]
    store.complete_job(long_a, f"w{long_a}", "/r", [("ehr", "p:A"), ("outbox", "p:A")], now=T0)
    due = store.lease_due_deliveries(now=T0)
    assert [(d.job_id, d.destination) for d in due] == [(long_a, "ehr"), (long_a, "outbox")]
    for delivery in due:
        store.mark_delivery_sent(delivery.id, now=T0)
    store.complete_job(later_a, f"w{later_a}", "/r", [("ehr", "p:A")], now=T0)
    # short_a goes now; later_a still waits for failed_a, in processing...
    assert [d.job_id for d in store.lease_due_deliveries(now=T0)] == [short_a, short_a]
    store.fail_job(failed_a, f"w{failed_a}", "undecodable", now=T0)
    # ... until that failed for good, and then for short_a's delivery to the ehr only.
    assert store.lease_due_deliveries(now=T0 + 1) == []
    [ehr_short] = [
        d for d in store.list_deliveries() if (d.job_id, d.destination) == (short_a, "ehr")
    ]
    store.mark_delivery_sent(ehr_short.id, now=T0 + 1)
    assert [d.job_id for d in store.lease_due_deliveries(now=T0 + 1)] == [later_a]


def test_dead_deliveries_unblock_the_patient_and_can_be_retried(store):
    _delivered_job(store, "1.1", [("ehr", "p:A")])
    _delivered_job(store, "1.2", [("ehr", "p:A")])
    first = store.lease_due_deliveries(now=T0)[0]
    store.mark_delivery_dead(first.id, "400 invalid", now=T0)
    assert [d.sop_instance_uid for d in store.lease_due_deliveries(now=T0)] == ["1.2"]
    dead = store.list_deliveries(dead_only=True)
    assert [(d.id, d.state, d.last_error) for d in dead] == [(first.id, "dead", "400 invalid")]
    assert store.retry_delivery(first.id, now=T0 + 5)
    assert not store.retry_delivery(first.id, now=T0 + 5)  # already pending
    [again] = [d for d in store.recent_deliveries() if d.id == first.id]  # `deliveries list`
    assert (again.state, again.attempts) == ("pending", 0)
    store.mark_delivery_dead(first.id, "400 invalid", now=T0 + 6)
    assert store.retry_all_dead(now=T0 + 7) == 1


def test_expired_delivery_lease_is_retaken(store):
    _delivered_job(store, "1.1", [("ehr", "p:A")])
    assert len(store.lease_due_deliveries(now=T0, lease_s=30)) == 1
    assert store.lease_due_deliveries(now=T0 + 29, lease_s=30) == []
    assert len(store.lease_due_deliveries(now=T0 + 31, lease_s=30)) == 1


def test_a_delivery_handed_back_is_leased_again_with_no_attempt_charged(store):
    """release_delivery: a delivery that waited its lease out for the formatting process
    is due again at once, untried; a stale lease's release (the row leased again since)
    changes nothing."""
    _delivered_job(store, "1.1", [("ehr", "p:A")])
    [leased] = store.lease_due_deliveries(now=T0, lease_s=300)
    store.release_delivery(leased.id, now=T0 + 1, leased_at=leased.updated_at)
    [again] = store.lease_due_deliveries(now=T0 + 2, lease_s=300)
    assert (again.id, again.state, again.attempts, again.last_error) == (
        leased.id,
        "pending",
        0,
        None,
    )
    store.release_delivery(leased.id, now=T0 + 3, leased_at=leased.updated_at)  # stale
    assert store.lease_due_deliveries(now=T0 + 4) == []


def test_concurrent_workers_never_share_a_job(store):
    for i in range(60):
        store.add_job(_job(uid=f"1.{i}", sha=f"{i:064d}"), content=OBJECT)
    taken: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := store.lease_job(name, 60, 3)) is not None:
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(1, 61))


def test_unusable_store_path_raises_store_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        SqliteStore(tmp_path / "file" / "gateway.sqlite3")


def test_a_store_of_schema_1_is_migrated_and_keeps_its_jobs(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SQLITE_SCHEMA_V1)
    store = SqliteStore(path)
    try:
        [old] = store.list_jobs()
        assert (old.sop_instance_uid, old.state) == ("1.2.3.9", "queued")
        assert (old.modality, old.institution, old.station) == ("", "", "")
        assert (old.priority, old.lease_rank) == ("routine", 1.0)  # leased by receipt
        new = store.add_job(
            _job("1.2.3.10", modality="ECG", station="CART7"), now=T0, content=OBJECT
        )
        job = store.get_job(new.job_id)
        assert (job.modality, job.station) == ("ECG", "CART7")
        assert (job.worker_deaths, job.patient_key, job.source) == (0, "", "")
        assert store.schema_version == SCHEMA_VERSION
    finally:
        store.close()
    SqliteStore(path).close()  # opening a current store again changes nothing


def test_a_store_of_a_newer_gateway_is_refused(tmp_path):
    path = tmp_path / "newer.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        SqliteStore(path)


def test_a_store_of_schema_2_gets_worker_deaths_patient_keys_and_receipt_order(tmp_path):
    path = tmp_path / "v2.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SQLITE_SCHEMA_V1.replace("PRAGMA user_version = 1;", ""))
        for column in ("modality", "institution", "station"):
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        conn.execute("CREATE INDEX deliveries_order ON deliveries (destination, patient_key, id)")
        conn.execute("UPDATE jobs SET state = 'leased', attempts = 2, lease_owner = 'old'")
        conn.execute("PRAGMA user_version = 2")
    store = SqliteStore(path)
    try:
        [old] = store.list_jobs()
        assert (old.worker_deaths, old.patient_key, old.attempts) == (0, "", 2)
        assert store.recover_after_restart(now=T0) == 1
        assert store.get_job(old.id).attempts == 1
        indexes = {row[0] for row in store._query("SELECT name FROM sqlite_master")}
        assert "deliveries_order" not in indexes
        assert {"deliveries_in_receipt_order", "jobs_by_patient"} <= indexes
        assert store.schema_version == SCHEMA_VERSION
    finally:
        store.close()


def test_a_job_held_for_its_engine_does_not_hold_back_the_patients_later_ecgs(store):
    """A VLM unavailable for a day holds its jobs; the patient's other reports still go."""
    held, later = (_add(store, i, "p:A") for i in (1, 2))
    assert store.lease_job("w1", 300, 3, now=T0).id == held
    assert store.lease_job("w2", 300, 3, now=T0).id == later
    assert store.hold_job(held, "w1", "held: vlm engine unavailable", T0 + 3600, now=T0)
    store.complete_job(later, "w2", "/r", [("ehr", "p:A")], now=T0)
    assert [d.job_id for d in store.lease_due_deliveries(now=T0)] == [later]


def test_retrying_a_job_failed_by_worker_deaths_starts_its_deaths_afresh(store):
    job_id = store.add_job(_job(), now=T0, content=OBJECT).job_id
    for death in range(3):
        assert store.lease_job("w", 300, 3, now=T0 + death).id == job_id
        store.record_worker_death(job_id, "w", 3, T0 + death, now=T0 + death)
    assert store.get_job(job_id).state == "failed"
    assert store.retry_failed_jobs("1.2.3.4", now=T0 + 10) == 1
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.worker_deaths) == ("queued", 0, 0)


def test_the_admin_views_count_the_queue_and_the_delivery_backlog(store):
    first, _ = (_add(store, i, f"p:{i}") for i in (1, 2))
    assert store.queue_stats(now=T0 + 10) == (2, 10.0)
    store.lease_job("w", 60, 3, now=T0)
    store.complete_job(first, "w", "/r", [("ehr", "p:1"), ("outbox", "p:1")], now=T0 + 1)
    [outbox] = store.lease_due_deliveries(now=T0 + 1, destination="outbox")
    store.mark_delivery_dead(outbox.id, "rejected", now=T0 + 2)
    assert store.queue_stats(now=T0 + 10) == (1, 10.0)
    assert store.delivery_backlog(now=T0 + 5) == {
        "ehr": {"pending": 1, "failed": 0, "dead": 0, "oldest_s": 4.0},
        "outbox": {"pending": 0, "failed": 0, "dead": 1, "oldest_s": 0.0},
    }
    store.check_writable()
