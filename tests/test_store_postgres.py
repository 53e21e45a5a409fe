"""What only a store shared by several gateway nodes must do, against a real PostgreSQL
server (a throwaway cluster, tests/postgres.py): nodes never share a lease, an object
received by one node is processed by another, a restart releases only its own node's
leases, the schema is versioned, and a database that goes away and comes back costs
failed calls (StoreError: intake answers 0xA700), never a restart of the gateway."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from gateway.store import NewJob, StoreError
from gateway.store.postgres import PostgresStore, describe
from gateway.store.postgres_schema import SCHEMA_VERSION
from tests.gateway_process import REPO, free_port

T0 = 1_000_000.0


def _new(uid: str, sha: str = "a" * 64, key: str = "p:A") -> NewJob:
    return NewJob(
        sop_instance_uid=uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.9.1.1",
        content_sha256=sha,
        spool_path=f"{uid}.dcm",
        kind="ecg-waveform",
        calling_ae="CART",
        called_ae="ECGGW",
        peer="127.0.0.1:1000",
        patient_key=key,
    )


@pytest.fixture
def nodes(postgres_url, tmp_path):
    """Two gateway nodes' stores on one database."""
    a = PostgresStore(postgres_url, tmp_path / "a", node="node-a")
    b = PostgresStore(postgres_url, tmp_path / "b", node="node-b")
    yield a, b
    a.close()
    b.close()


def test_two_nodes_leasing_at_once_never_share_a_job(nodes):
    for i in range(80):
        nodes[0].add_job(_new(f"1.{i}", f"{i:064d}"), content=b"x")
    taken: list[int] = []
    lock = threading.Lock()

    def worker(store: PostgresStore, name: str) -> None:
        while (job := store.lease_job(f"{store.node}:{name}", 60, 3)) is not None:
            with lock:
                taken.append(job.id)

    threads = [
        threading.Thread(target=worker, args=(store, f"w{i}")) for store in nodes for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, 81))


def test_an_object_received_by_one_node_is_processed_and_delivered_by_another(nodes, tmp_path):
    a, b = nodes
    content = bytes(range(256)) * 1000
    job_id = a.add_job(_new("1.2.3"), now=T0, content=content).job_id
    job = b.lease_job("node-b:w0", 60, 3, now=T0)
    assert job.id == job_id and job.spool_path.startswith(str(tmp_path / "b"))
    with open(job.spool_path, "rb") as fh:
        assert fh.read() == content
    produced = tmp_path / "b-output" / str(job_id)  # what the worker wrote
    produced.mkdir(parents=True)
    (produced / "report.json").write_text('{"codes": []}')
    (produced / "ecg.pdf").write_bytes(b"%PDF-1.7 ...")
    assert b.complete_job(job_id, "node-b:w0", str(produced), [("ehr", "p:A")], now=T0)
    [delivery] = a.lease_due_deliveries(now=T0)  # node a sends it, from the database's copy
    sent = {p.name: p.read_bytes() for p in sorted((tmp_path / "a").glob("reports/*/*"))}
    assert sent == {"ecg.pdf": b"%PDF-1.7 ...", "report.json": b'{"codes": []}'}
    assert delivery.report_dir == str(tmp_path / "a" / "reports" / str(job_id))
    assert not (tmp_path / "b" / "objects" / f"{job_id}.dcm").exists()  # done: copy dropped


def test_a_restart_releases_its_own_nodes_leases_only(nodes):
    a, b = nodes
    for i in range(2):
        a.add_job(_new(f"1.{i}", f"{i:064d}"), content=b"x", now=T0)
    mine = a.lease_job("node-a:1234:worker-0", 300, 3, now=T0)
    theirs = b.lease_job("node-b:99:worker-0", 300, 3, now=T0)
    assert a.recover_after_restart(now=T0 + 1) == 1
    assert (a.get_job(mine.id).state, a.get_job(mine.id).attempts) == ("queued", 0)
    assert a.get_job(theirs.id).state == "leased"  # node b's until its lease runs out
    assert a.lease_job("node-a:5678:worker-0", 300, 3, now=T0 + 2).id == mine.id
    assert a.lease_job("node-a:5678:worker-0", 300, 3, now=T0 + 2) is None
    assert a.lease_job("node-a:5678:worker-0", 300, 3, now=T0 + 301).id == theirs.id


def test_a_restart_releases_its_own_delivery_leases_only(nodes):
    a, b = nodes
    for i, store in enumerate(nodes):
        job_id = store.add_job(_new(f"1.{i}", f"{i:064d}", key=f"p:{i}"), content=b"x").job_id
        store.lease_job(f"{store.node}:w", 300, 3)
        store.complete_job(job_id, f"{store.node}:w", "/nowhere", [("ehr", f"p:{i}")])
        assert len(store.lease_due_deliveries(limit=1, lease_s=300)) == 1
    a.recover_after_restart()
    assert [d.sop_instance_uid for d in b.lease_due_deliveries(lease_s=300)] == ["1.0"]


def test_the_same_object_sent_to_two_nodes_at_once_is_one_job(nodes):
    results = []
    barrier = threading.Barrier(2)

    def receive(store: PostgresStore) -> None:
        barrier.wait()
        results.append(store.add_job(_new("1.9"), content=b"x"))

    threads = [threading.Thread(target=receive, args=(store,)) for store in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.duplicate for r in results) == [False, True]
    assert len({r.job_id for r in results}) == 1


def test_a_database_of_a_newer_gateway_is_refused(postgres_url, tmp_path):
    PostgresStore(postgres_url, tmp_path / "c").close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        PostgresStore(postgres_url, tmp_path / "c")


def test_store_migrate_from_the_cli_creates_the_schema_once(postgres_url, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(f"store: {postgres_url}\ndata_dir: {tmp_path / 'data'}\n")
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "store", "migrate", "-c", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"schema version {SCHEMA_VERSION}" in done.stdout
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_an_unreachable_database_is_one_clear_error(tmp_path):
    url = f"postgresql://ecg@127.0.0.1:{free_port()}/ecg"
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"postgresql://ecg@127.0.0.1:\d+/ecg: cannot connect"):
        PostgresStore(url, tmp_path / "c")
    assert time.monotonic() - started < 10


def test_messages_never_show_the_password():
    where = describe("postgresql://ecg:secret@db.example:5433/ecg?sslmode=verify-full")
    assert where == "postgresql://ecg@db.example:5433/ecg"


def test_losing_the_database_fails_calls_and_they_work_again_when_it_returns(
    postgres_cluster, postgres_url, tmp_path
):
    store = PostgresStore(postgres_url, tmp_path / "c", node="node-a")
    try:
        store.add_job(_new("1.1", "1" * 64), content=b"x")
        postgres_cluster.stop()
        try:
            with pytest.raises(StoreError):
                store.add_job(_new("1.2", "2" * 64), content=b"x")
        finally:
            postgres_cluster.start()
        deadline = time.monotonic() + 30
        while True:  # the pool reconnects by itself
            try:
                store.add_job(_new("1.3", "3" * 64), content=b"x")
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store did not reconnect"
                time.sleep(0.5)
        assert [j.sop_instance_uid for j in store.list_jobs()] == ["1.3", "1.1"]
    finally:
        store.close()


def test_retention_removes_finished_objects_and_reports_from_the_database(
    nodes, postgres_url, tmp_path
):
    from gateway.retention import purge

    a, b = nodes
    job_id = a.add_job(_new("1.5"), now=T0, content=b"DICM").job_id
    job = a.lease_job("node-a:w", 60, 3, now=T0)
    produced = tmp_path / "produced"
    produced.mkdir()
    (produced / "report.json").write_text("{}")
    a.complete_job(job_id, "node-a:w", str(produced), [("ehr", "p:A")], now=T0)
    [delivery] = b.lease_due_deliveries(now=T0)
    assert a.holds_object(a.get_job(job_id))
    purge(a, [], retention_days=1, now=T0 + 3 * 86400)
    assert a.holds_object(a.get_job(job_id))  # its delivery is unsent: kept
    b.mark_delivery_sent(delivery.id, now=T0)
    assert purge(a, [], retention_days=1, now=T0 + 3 * 86400).jobs == 1
    assert not a.holds_object(a.get_job(job_id))
    with psycopg.connect(postgres_url) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM objects) + (SELECT count(*) FROM report_files)"
        ).fetchone()[0]
    assert left == 0 and not Path(job.spool_path).exists()


def test_tls_to_the_database_is_used_and_its_certificate_verified(tmp_path):
    from peers import make_pki

    from tests.postgres import PostgresCluster, server_binaries

    bindir = server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found")
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    cluster = PostgresCluster(bindir)
    cert, key = cluster.give(pki.server_cert), cluster.give(pki.server_key)
    cluster.options = f"-c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
    cluster.init()
    try:
        url = cluster.new_database().replace("127.0.0.1", "localhost")
        verified = f"{url}?sslmode=verify-full&sslrootcert={pki.ca}"
        store = PostgresStore(verified, tmp_path / "c")
        store.close()
        with psycopg.connect(verified) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert row.fetchone()[0] is True
        impostor = f"{url}?sslmode=verify-full&sslrootcert={pki.other_ca}"
        with pytest.raises(StoreError, match="cannot connect.*certificate verify failed"):
            PostgresStore(impostor, tmp_path / "c")
    finally:
        cluster.remove()
