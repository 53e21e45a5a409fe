"""Gateway nodes on one PostgreSQL database against the embedded SQLite store, same run.

1. One node, SQLite against PostgreSQL: a burst of ECGs over one association, then ECGs
   sent one per association at a steady rate. Throughput (ECGs received -> delivered per
   second, first receipt to last delivery) and receive -> delivered latency, p50 and p95.
   Goal: PostgreSQL within 25 % of SQLite on both.
2. 1, 2 and 3 `ecg-gateway serve` nodes on one database, the burst split evenly and sent
   to every node at once: throughput.
3. Failover: two nodes, `kill -9` of one while it holds leased jobs; seconds from the
   kill until the other node has finished every job the dead one held (its lease time
   bounds the wait, plus the work itself).

Every node uses the shipped config/routes.yaml (outbox: FHIR Bundle, HL7 ORU^R01, PNG,
PDF). The PostgreSQL server is a throwaway cluster on this machine (tests/postgres.py)
with fsync on, as durable as SQLite's synchronous=FULL.

    .venv/bin/python bench/nodes.py [--objects 120] [--paced 30] [--rate 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from intake import free_port, make_ecgs, send_burst, send_paced, wait_for_echo
from machine import cpu_name

from gateway.server import node_name
from gateway.store import SqliteStore, Store
from gateway.store.postgres import PostgresStore
from tests.postgres import PostgresCluster, server_binaries

FAILOVER_LEASE_S = 20


class Node:
    """One `ecg-gateway serve` process with its own data directory and port."""

    def __init__(self, work: Path, name: str, store_url: str | None, workers: int, lease_s: int):
        self.data_dir = work / name
        self.port = free_port()
        config = work / f"{name}.yaml"
        store = f"store: {store_url}\n" if store_url else ""
        config.write_text(
            f"{store}workers: {workers}\njob_lease_s: {lease_s}\n"
            f"routes: {REPO / 'config' / 'routes.yaml'}\n"
        )
        self.log = open(work / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "-c", str(config),
             "--data-dir", str(self.data_dir), "--port", str(self.port)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.log,
        )  # fmt: skip
        wait_for_echo(self.port, self.process)

    def stop(self, hard: bool = False) -> None:
        if hard:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=120, help="ECGs in each burst")
    parser.add_argument("--paced", type=int, default=30, help="ECGs in each latency run")
    parser.add_argument("--rate", type=float, default=4.0, help="ECGs/s in the latency runs")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per node")
    args = parser.parse_args()
    for tool in ("storescu", "echoscu"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install dcmtk")
    bindir = server_binaries()
    if bindir is None:
        sys.exit("PostgreSQL server binaries not found: install Debian's postgresql")
    cluster = PostgresCluster(bindir, fsync=True).init()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-nodes-") as tmp:
            work = Path(tmp)
            needed = 9 * args.workers + 5 * args.objects + 2 * args.paced
            files = iter(make_ecgs(work / "in", needed))
            rows = {}
            for label, url in (("SQLite", None), ("PostgreSQL", cluster.new_database())):
                rows[label] = one_node(work / label, url, files, args)
            scaling = {1: rows["PostgreSQL"]["rate"]}
            for count in (2, 3):
                scaling[count] = several_nodes(work, cluster.new_database(), count, files, args)
            takeover = failover(work / "failover", cluster.new_database(), files, args)
    finally:
        cluster.remove()
    print_table(args, rows, scaling, takeover)
    return 0


def one_node(work: Path, url: str | None, files, args) -> dict[str, float]:
    """Burst throughput and paced latency of one node."""
    work.mkdir()
    node = Node(work, "node", url, args.workers, 300)
    store = open_store(work, node, url)
    try:
        warm_up(node, store, files, args.workers)
        burst = take(files, args.objects)
        start_id = last_job_id(store)
        send_burst(node.port, burst)
        rate = throughput(store, start_id, len(burst))
        start_id = last_job_id(store)
        send_paced(node.port, take(files, args.paced), args.rate)
        latencies = receive_to_delivered(store, start_id, args.paced)
    finally:
        store.close()
        node.stop()
    return {
        "rate": rate,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
    }


def several_nodes(work: Path, url: str, count: int, files, args) -> float:
    """Throughput of `count` nodes, the burst split among them and sent at once."""
    work = work / f"nodes-{count}"
    work.mkdir()
    nodes = [Node(work, f"node-{i}", url, args.workers, 300) for i in range(count)]
    store = open_store(work, nodes[0], url)
    try:
        for node in nodes:
            warm_up(node, store, files, args.workers)
        burst = take(files, args.objects)
        start_id = last_job_id(store)
        senders = [
            threading.Thread(target=send_burst, args=(node.port, burst[i::count]))
            for i, node in enumerate(nodes)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        return throughput(store, start_id, len(burst))
    finally:
        store.close()
        for node in nodes:
            node.stop()


def failover(work: Path, url: str, files, args) -> dict[str, float]:
    """Seconds from a node's kill -9 until the jobs it held are done by the other."""
    work.mkdir()
    nodes = [Node(work, f"node-{i}", url, args.workers, FAILOVER_LEASE_S) for i in range(2)]
    victim = nodes[0]
    prefix = f"{node_name(victim.data_dir)}:"
    store = open_store(work, nodes[1], url)
    try:
        for node in nodes:
            warm_up(node, store, files, args.workers)
        burst = take(files, args.objects // 2)
        senders = [
            threading.Thread(target=send_until_killed, args=(node.port, burst[i::2]))
            for i, node in enumerate(nodes)
        ]
        for sender in senders:
            sender.start()
        held: set[int] = set()
        while not held:
            held = {
                j.id for j in store.list_jobs(state="leased") if j.lease_owner.startswith(prefix)
            }
        victim.stop(hard=True)
        killed = time.monotonic()
        while any(store.get_job(job_id).state != "done" for job_id in held):
            time.sleep(0.05)
        seconds = time.monotonic() - killed
        for sender in senders:
            sender.join()
        return {"seconds": seconds, "jobs": len(held)}
    finally:
        store.close()
        nodes[1].stop()


def send_until_killed(port: int, files: list[Path]) -> None:
    """storescu to a node that may be killed meanwhile (its association then breaks)."""
    subprocess.run(
        ["storescu", "-aet", "BENCH", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True, check=False, env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip


def open_store(work: Path, node: Node, url: str | None) -> Store:
    if url is None:
        return SqliteStore(node.data_dir / "gateway.sqlite3")
    return PostgresStore(url, work / "bench-cache")


def take(files, count: int) -> list[Path]:
    return [next(files) for _ in range(count)]


def warm_up(node: Node, store: Store, files, count: int) -> None:
    """One ECG per worker, processed and delivered before measuring: a gateway runs for
    days, and starting its worker processes is no part of its throughput."""
    start_id = last_job_id(store)
    send_burst(node.port, take(files, count))
    throughput(store, start_id, count)


def last_job_id(store: Store) -> int:
    jobs = store.list_jobs(limit=1)
    return jobs[0].id if jobs else 0


def delivered(store: Store, start_id: int, expected: int, timeout_s: float = 900) -> dict:
    """Job -> (received, delivered) for the `expected` jobs after `start_id`, once all
    are delivered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        received = {j.id: j.created_at for j in store.list_jobs(limit=100_000) if j.id > start_id}
        for job in store.list_jobs(state="failed", limit=1):
            sys.exit(f"job {job.id} failed: {job.error}")
        sent = {
            d.job_id: d.sent_at
            for d in store.list_deliveries(limit=100_000)
            if d.job_id in received and d.sent_at is not None
        }
        if len(received) >= expected and len(sent) >= expected:
            return {job_id: (received[job_id], sent[job_id]) for job_id in received}
        time.sleep(0.2)
    sys.exit(f"not all delivered after {timeout_s} s")


def throughput(store: Store, start_id: int, expected: int) -> float:
    times = delivered(store, start_id, expected)
    first = min(received for received, _ in times.values())
    last = max(sent for _, sent in times.values())
    return expected / (last - first)


def receive_to_delivered(store: Store, start_id: int, expected: int) -> np.ndarray:
    return np.array(
        [sent - received for received, sent in delivered(store, start_id, expected).values()]
    )


def print_table(args, rows: dict, scaling: dict, takeover: dict) -> None:
    sqlite, pg = rows["SQLite"], rows["PostgreSQL"]
    print(
        f"\nNodes benchmark, {date.today().isoformat()}, {cpu_name()}, {os.cpu_count()} cores,"
        f" {args.workers} workers per node, bursts of {args.objects} ECGs, latency at"
        f" {args.rate:g} ECGs/s\n"
    )
    print("| measure | SQLite, 1 node | PostgreSQL | PostgreSQL / SQLite | goal |")
    print("|---|---|---|---|---|")
    print(f"| received -> delivered, 1 node (ECGs/s) | {sqlite['rate']:.1f} | {pg['rate']:.1f}"
          f" | {pg['rate'] / sqlite['rate']:.2f} | >= 0.75 |")  # fmt: skip
    for key in ("p50", "p95"):
        print(f"| received -> delivered latency {key} (s) | {sqlite[key]:.2f} | {pg[key]:.2f}"
              f" | {pg[key] / sqlite[key]:.2f} | {'<= 1.25' if key == 'p95' else '-'} |")  # fmt: skip
    for count in (2, 3):
        print(f"| {count} nodes on one database (ECGs/s) | - | {scaling[count]:.1f}"
              f" | {scaling[count] / scaling[1]:.2f} of 1 node | - |")  # fmt: skip
    print(f"| kill -9 of a node -> its {takeover['jobs']:.0f} leased jobs done by the other (s)"
          f" | - | {takeover['seconds']:.1f} | lease {FAILOVER_LEASE_S} s | <= lease + work |")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
