"""What the admin endpoint and the audit trail cost: the whole gateway with both on
versus both off, same run, goal <= 5 % on throughput and p95 latency.

Each round runs `ecg-gateway serve` twice on the same ECGs (the order alternates from
round to round, as the machine is shared and its speed drifts): once with
`admin: {enabled: false}` and `audit: {enabled: false}`, once with the admin endpoint
scraped every second (/metrics and /readyz: harsher than Prometheus' usual 15 s) and
the audit trail written, fsync'd and forwarded to a real rsyslogd over TCP (one record
per ECG received and one per report delivered). The measures are those of
bench/intake.py: N ECGs over one association from dcmtk's storescu (intake objects/s,
ECGs fully processed and delivered per second), then ECGs one per association at a
steady rate (C-STORE -> report and -> delivered, p50 and p95).

A shared machine's drift can exceed a 5 % effect on whole-gateway rates, so the intake
path is also timed in-process, where audit records are written: Intake.accept (checks,
fsync'd spool, committed job, and with audit on its record) for each object, off and on
alternating in `--rounds * 2` batches, with the forwarder sending to rsyslogd and the
admin endpoint scraped every second. The counters themselves (gateway/metrics.py, on
prometheus_client) run in both: their cost per call is the last row, against a plain
Counter behind a lock as the gateway had before.

    .venv/bin/python bench/metrics_overhead.py [--objects 200] [--paced 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import timeit
from collections import Counter
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Self

import httpx
import numpy as np
import pydicom

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from intake import free_port, make_ecgs, run_gateway
from machine import cpu_name

from gateway.admin.http import AdminApp, start_admin
from gateway.admin.prometheus import StoreCollector
from gateway.admin.readiness import EngineState, Readiness
from gateway.audit import Auditor
from gateway.config import AdminConfig, AuditConfig
from gateway.intake.accept import Intake, ReceivedObject
from gateway.metrics import JOBS_DONE, Metrics
from gateway.store import SqliteStore
from tests.syslog_peer import RsyslogCollector, rsyslog_available

MEASURES = (
    ("intake_rate", "intake, objects/s over one association", True),
    ("processed_rate", "fully processed, ECGs/s", True),
    ("delivered_rate", "delivered to the outbox, ECGs/s", True),
    ("p50", "C-STORE -> report p50, s", False),
    ("p95", "C-STORE -> report p95, s", False),
    ("delivered_p95", "C-STORE -> delivered p95, s", False),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200, help="ECGs in each burst")
    parser.add_argument("--paced", type=int, default=40, help="ECGs in each latency run")
    parser.add_argument("--rate", type=float, default=8.0, help="ECGs/s in the latency run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for tool in ("storescu", "echoscu"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: install dcmtk")
    if not rsyslog_available():
        sys.exit("rsyslogd not found: install rsyslog (the audit collector)")
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    scrapes = [0]
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        work = Path(tmp)
        files = make_ecgs(work / "in", args.workers + args.objects + args.paced)
        warm_up, rest = files[: args.workers], files[args.workers :]
        burst, paced = rest[: args.objects], rest[args.objects :]
        collector = RsyslogCollector(work / "rsyslog", free_port()).start()
        try:
            for round_ in range(args.rounds):
                for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                    run = work / f"{mode}-{round_}"
                    run.mkdir()
                    extra, admin_port = config_for(mode, collector.port)
                    with Scraper(admin_port) as scraper:
                        results[mode].append(
                            run_gateway(run, warm_up, burst, paced, args.rate, args.workers, extra)
                        )
                    scrapes[0] += scraper.count
                    print(f"round {round_ + 1} {mode}: {results[mode][-1]}", file=sys.stderr)
            in_process = {"off": [], "on": []}
            for round_ in range(args.rounds * 2):
                for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                    run = work / f"intake-{mode}-{round_}"
                    in_process[mode].append(run_intake(run, burst, mode, collector.port))
            audited = len(collector.received())
        finally:
            collector.stop()
    print_table(args, results, in_process, scrapes[0], audited)
    return 0


def received_object(path: Path) -> ReceivedObject:
    """A file as the SCP hands it to intake: the bytes, and where the dataset starts
    (after the preamble, 'DICM' and the file meta group, whose length is its first value)."""
    data = path.read_bytes()
    group_length = int.from_bytes(data[140:144], "little")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ReceivedObject(
        str(ds.SOPClassUID),
        str(ds.SOPInstanceUID),
        data,
        144 + group_length,
        "BENCH",
        "ECGGW",
        "127.0.0.1:50000",
    )


def run_intake(work: Path, files: list[Path], mode: str, syslog_port: int) -> dict[str, float]:
    """Intake.accept per object, in-process: objects/s and per-object p50, p95 (s)."""
    objects = [received_object(path) for path in files]
    spool = work / "spool"
    spool.mkdir(parents=True)
    store = SqliteStore(work / "gateway.sqlite3")
    metrics = Metrics()
    with ExitStack() as running:
        running.callback(store.close)
        audit, port = None, None
        if mode == "on":
            config = AuditConfig(syslog={"host": "127.0.0.1", "port": syslog_port})
            audit = Auditor(work / "audit", config, "ECGGW", metrics, forward=True)
            audit.start()
            running.callback(audit.close)
            readiness = Readiness(
                store,
                spool,
                0,
                lambda: True,
                lambda: EngineState("measure", "ready"),
                lambda: ["outbox"],
                threading.Event(),
            )
            metrics.registry.register(StoreCollector(store, readiness.destinations, audit.queued))
            server = start_admin(AdminConfig(port=0), AdminApp(readiness, metrics.registry))
            running.callback(server.stop)
            port = server.port
        intake = Intake(store, spool, metrics, 0, lambda: None, audit)
        latencies = []
        with Scraper(port):
            started = time.perf_counter()
            for obj in objects:
                begun = time.perf_counter()
                outcome = intake.accept(obj)
                metrics.received(obj.sop_class_uid, outcome.status)
                latencies.append(time.perf_counter() - begun)
                if outcome.status != 0:
                    sys.exit(f"intake refused an object: {outcome}")
            seconds = time.perf_counter() - started
    return {
        "rate": len(objects) / seconds,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
    }


def config_for(mode: str, syslog_port: int) -> tuple[str, int | None]:
    if mode == "off":
        return "admin: {enabled: false}\naudit: {enabled: false}\n", None
    admin_port = free_port()
    lines = (
        f"admin: {{port: {admin_port}}}\n"
        f"audit: {{syslog: {{host: 127.0.0.1, port: {syslog_port}}}}}\n"
    )
    return lines, admin_port


class Scraper:
    """GET /metrics and /readyz every second while the gateway runs, as a monitor would."""

    def __init__(self, port: int | None) -> None:
        self.port = port
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        if self.port is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.port is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5) as client:
            while not self._stop.wait(1.0):
                try:
                    client.get("/metrics").raise_for_status()
                    client.get("/readyz")
                    self.count += 1
                except httpx.HTTPError:
                    continue  # not up yet, or stopping


def counter_cost_ns() -> tuple[float, float]:
    """ns per counted event: prometheus_client-backed Metrics.inc against a Counter with a
    lock, the gateway's counters before this change."""
    metrics = Metrics()
    lock, plain = threading.Lock(), Counter()

    def plain_inc() -> None:
        with lock:
            plain[JOBS_DONE] += 1

    calls = 200_000
    prometheus = min(timeit.repeat(lambda: metrics.inc(JOBS_DONE), number=calls, repeat=3))
    before = min(timeit.repeat(plain_inc, number=calls, repeat=3))
    return prometheus / calls * 1e9, before / calls * 1e9


def print_table(args, results: dict, in_process: dict, scrapes: int, audited: int) -> None:
    print(
        f"\nMetrics and audit overhead, {date.today().isoformat()}, {cpu_name()}, "
        f"{os.cpu_count()} cores, {args.rounds} rounds of {args.objects} + {args.paced} ECGs, "
        f"workers {args.workers}; medians over rounds\n"
    )
    print("| measure | admin and audit off | on | cost |")
    print("|---|---|---|---|")
    for key, label, higher_is_better in MEASURES:
        off = float(np.median([r[key] for r in results["off"]]))
        on = float(np.median([r[key] for r in results["on"]]))
        cost = (off / on - 1) if higher_is_better else (on / off - 1)
        digits = 1 if higher_is_better else 3
        print(f"| {label} | {off:.{digits}f} | {on:.{digits}f} | {cost * 100:+.1f} % |")
    for key, label in (
        ("rate", "intake in-process, objects/s"),
        ("p50", "intake in-process per object p50, ms"),
        ("p95", "intake in-process per object p95, ms"),
    ):
        off = float(np.median([r[key] for r in in_process["off"]]))
        on = float(np.median([r[key] for r in in_process["on"]]))
        cost = off / on - 1 if key == "rate" else on / off - 1
        scale = 1 if key == "rate" else 1000
        print(f"| {label} | {off * scale:.2f} | {on * scale:.2f} | {cost * 100:+.1f} % |")
    prometheus_ns, before_ns = counter_cost_ns()
    print(
        f"| one counted event, ns (prometheus_client vs Counter+lock) | {before_ns:.0f} "
        f"| {prometheus_ns:.0f} | +{prometheus_ns - before_ns:.0f} ns |"
    )
    print(
        f"\n{scrapes} scrapes of /metrics and /readyz; {audited} audit records received "
        "by rsyslogd. Cost: how much slower (or longer) with admin and audit on; goal <= 5 %."
    )


if __name__ == "__main__":
    sys.exit(main())
