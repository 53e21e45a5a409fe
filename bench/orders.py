"""HL7 orders accepted per second over one MLLP connection: the gateway's order listener
against python-hl7's own MLLP server answering ACK without storing, same run.

python-hl7's MLLP client plays the EHR: N ORM^O01 new orders (v2.3.1, distinct placer
numbers) one after another on ONE connection, each sent once the previous ACK is in,
as interface engines send in original acknowledgement mode. Targets:

- baseline: python-hl7's asyncio MLLP server (hl7.mllp), which parses each message and
  answers `create_ack()` at once, storing nothing;
- the gateway's listener (gateway/intake/hl7_orders.py) in-process, its audit trail on,
  on the embedded SQLite store (WAL, synchronous=FULL: every order fsync'd before AA);
- the same on PostgreSQL 15, a throwaway cluster on this machine with fsync on.

Orders per second over the burst, and per-message round trip p50 / p95.

    .venv/bin/python bench/orders.py [--orders 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from hl7.client import MLLPClient
from hl7.mllp import start_hl7_server

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name

from gateway.store import SqliteStore, Store
from gateway.store.postgres import PostgresStore
from tests.hl7_orders_support import ack_code, orm, parse_ack, start_listener
from tests.postgres import PostgresCluster, server_binaries


def burst(port: int, count: int, prefix: str) -> tuple[float, list[float]]:
    """(orders/s, per-message seconds) for `count` orders over one connection."""
    messages = [orm(placer=f"{prefix}{i}", control_id=f"{prefix}{i}") for i in range(count)]
    times = []
    with MLLPClient("127.0.0.1", port) as client:
        started = time.perf_counter()
        for message in messages:
            sent = time.perf_counter()
            reply = client.send_message(message)
            times.append(time.perf_counter() - sent)
            if ack_code(parse_ack(reply)) != "AA":
                raise SystemExit(f"not accepted: {reply!r}")
        elapsed = time.perf_counter() - started
    return count / elapsed, times


class Baseline:
    """python-hl7's MLLP server in a thread: parse, create_ack, answer; nothing stored."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()
        self.port = self.server.sockets[0].getsockname()[1]

    async def _start(self):
        async def answer(reader, writer):
            try:
                while not reader.at_eof():
                    message = await reader.readmessage()
                    writer.writemessage(message.create_ack())
                    await writer.drain()
            except asyncio.IncompleteReadError:
                pass
            finally:
                writer.close()

        return await start_hl7_server(answer, "127.0.0.1", 0)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()

    async def _stop(self) -> None:
        """Close the server and let its connections' tasks end (the client has gone)."""
        self.server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=5)


def gateway_run(store: Store, directory: Path, count: int, prefix: str):
    listener, _ = start_listener(store, directory / f"audit-{prefix}")
    try:
        burst(listener.port, 20, f"warm-{prefix}")
        return burst(listener.port, count, prefix)
    finally:
        listener.stop()


def row(name: str, result: tuple[float, list[float]], baseline: float | None) -> str:
    rate, times = result
    p50 = statistics.median(times) * 1000
    p95 = statistics.quantiles(times, n=20)[18] * 1000
    ratio = f"{rate / baseline:.2f}" if baseline else "1.00"
    return f"| {name} | {rate:.0f} | {p50:.2f} / {p95:.2f} | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    baseline = Baseline()
    try:
        burst(baseline.port, 20, "warm-base")
        base = burst(baseline.port, args.orders, "base")
    finally:
        baseline.stop()
    sqlite = SqliteStore(directory / "gateway.sqlite3")
    try:
        on_sqlite = gateway_run(sqlite, directory, args.orders, "sqlite")
    finally:
        sqlite.close()
    on_postgres = None
    bindir = server_binaries()
    if bindir is not None:
        cluster = PostgresCluster(bindir, fsync=True).init()
        try:
            store = PostgresStore(cluster.new_database(), directory / "cache", node="bench")
            try:
                on_postgres = gateway_run(store, directory, args.orders, "pg")
            finally:
                store.close()
        finally:
            cluster.remove()
    print(
        f"{date.today()}, {cpu_name()}, `.venv/bin/python bench/orders.py --orders {args.orders}`"
    )
    print()
    print("| target | orders/s | round trip p50 / p95 (ms) | ratio to baseline |")
    print("|---|---|---|---|")
    print(row("python-hl7 MLLP server, ACK without storing (baseline)", base, None))
    print(row("ECG Gateway order listener, SQLite", on_sqlite, base[0]))
    if on_postgres is not None:
        print(row("ECG Gateway order listener, PostgreSQL", on_postgres, base[0]))


if __name__ == "__main__":
    main()
