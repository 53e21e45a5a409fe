"""Over-read in the store: what confirming costs against the preliminary path, the
report view's server time, and the worklist query with 10,000 open reports; SQLite and
PostgreSQL in the same run.

1. Completion (the preliminary path): `complete_job` as today (job done + deliveries)
   against `complete_job` that also writes version 1 and the worklist row, alternating
   job by job, same transaction count.
2. Confirm: `OverreadService.confirm` with an edit (read the package, apply and check
   the edit, route, one transaction: version 2 + its deliveries + the change).
3. View: `OverreadService.view` of a confirmed report (the package, its PDF drawn
   again for version 2, versions, history, the opened mark).
4. Worklist: `OverreadService.worklist()` (first 200, critical, priority, oldest first)
   with `--open` open reports in the index, plain and filtered by site and priority.

One real ECG (PTB-XL 00001, 500 Hz) is analysed and rendered once; every job shares its
package. PostgreSQL is a throwaway cluster on this machine with fsync on (as durable as
SQLite's synchronous=FULL).

    .venv/bin/python bench/overread.py [--jobs 60] [--open 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name

import model
from gateway.overread import OverreadService, Physician, ReportEdit, StatementEdit
from gateway.processing.package import ReportPackage
from gateway.processing.report_head import report_head
from gateway.routing import Router
from gateway.store import NewJob, SqliteStore, Store
from gateway.store.postgres import PostgresStore
from model.ecg import Ecg
from tests.postgres import PostgresCluster, server_binaries

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
RECORD = DATA / "ptbxl" / "records500" / "00000" / "00001_hr"
PHYSICIAN = Physician("bench", "Bench^Doctor", "physician")
EDIT = ReportEdit([StatementEdit("AFIB"), StatementEdit("LVH")], "AF, LVH.", {"qrs_ms": 102.0})
SITES = ("NORTH", "SOUTH", "EAST", "WEST")
PRIORITIES = (0, 1, 2, 2, 2, 2)  # stat, asap, routine x4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60, help="jobs completed and confirmed")
    parser.add_argument("--open", type=int, default=10000, help="open reports in the worklist")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-overread-"))
    package_dir = make_package(work / "package")
    routes = work / "routes.yaml"
    routes.write_text(
        "destinations:\n  outbox: {type: file, directory: outbox}\ndefault: [outbox]\n"
    )
    results = {
        "SQLite": run(
            SqliteStore(work / "sqlite" / "gateway.sqlite3"), work, package_dir, routes, args
        )
    }
    cluster = PostgresCluster(server_binaries(), fsync=True).init()
    try:
        store = PostgresStore(cluster.new_database(), work / "pg-cache", node="bench")
        results["PostgreSQL"] = run(store, work, package_dir, routes, args)
    finally:
        cluster.remove()
    print_table(results, args)


def make_package(directory: Path) -> Path:
    ecg = model.load(RECORD)
    report = model.analyze(ecg)
    ReportPackage(
        job_id=0,
        kind="ecg-waveform",
        metadata=ecg.metadata.with_updates(patient_id="BENCH-1", patient_name="Bench^Patient"),
        report=report,
        png=model.render_png(ecg, header=False),
        pdf=model.render_pdf(ecg, header=True, report=report),
        waveform=Ecg(ecg.signal, ecg.sampling_rate, ecg.lead_names),
    ).save(directory)
    return directory


def run(store: Store, work: Path, package_dir: Path, routes: Path, args) -> dict[str, list[float]]:
    """Milliseconds per operation, by operation."""
    times: dict[str, list[float]] = {k: [] for k in ("complete", "complete+v1", "confirm", "view")}
    package = ReportPackage.load(package_dir)
    service = OverreadService(store, Router(routes, work))
    try:
        confirmable = []
        for i in range(args.jobs * 2):
            job = leased_job(store, f"1.2.826.0.1.{id(store)}.{i}")
            head = report_head(job, package) if i % 2 else None
            produced = work / f"reports-{id(store)}" / str(job.id)  # PostgreSQL moves it
            shutil.copytree(package_dir, produced)
            started = time.perf_counter()
            store.complete_job(
                job.id, "bench:w", str(produced), [("outbox", "p:1")], first_version=head
            )
            times["complete+v1" if head else "complete"].append(ms(started))
            if head:
                confirmable.append(job.id)
        for job_id in confirmable:
            started = time.perf_counter()
            service.confirm(job_id, PHYSICIAN, EDIT, base_version=1)
            times["confirm"].append(ms(started))
        for job_id in confirmable:
            started = time.perf_counter()
            service.view(job_id, PHYSICIAN)
            times["view"].append(ms(started))
        fill_worklist(store, args.open)
        for name, filters in (
            ("worklist", {}),
            ("worklist site", {"site": "NORTH"}),
            ("worklist stat", {"priority": "stat"}),
            ("worklist all", {"include_final": True}),
        ):
            times[name] = []
            for _ in range(30):
                started = time.perf_counter()
                rows = service.worklist(**filters)
                times[name].append(ms(started))
            assert rows, name
    finally:
        store.close()
    return times


def leased_job(store: Store, uid: str):
    store.add_job(
        NewJob(
            uid,
            "1.2.840.10008.5.1.4.1.1.9.1.1",
            uid,
            f"{uid}.dcm",
            "ecg-waveform",
            "CART",
            "ECGGW",
            "127.0.0.1",
            patient_key=f"p:{uid}",
        ),
        content=b"x",
    )
    return store.lease_job("bench:w", 300, 3)


def fill_worklist(store: Store, count: int) -> None:
    """`count` open reports in the index, as completions write them (raw SQL in one
    transaction: 10,000 completions one by one would time the disk, not the query)."""
    rows = [
        (
            f"9.{i}", SITES[i % 4], PRIORITIES[i % 6], int(i % 97 == 0), 1_800_000_000.0 + i,
        )
        for i in range(count)
    ]  # fmt: skip
    with store._transaction() as conn:  # the store's own transaction
        for uid, site, rank, critical, at in rows:
            job_id = store._execute(
                conn,
                "INSERT INTO jobs (sop_instance_uid, sop_class_uid, content_sha256, spool_path,"
                " kind, state, available_at, created_at, updated_at)"
                " VALUES (?, '1.2', ?, '', 'ecg-waveform', 'done', ?, ?, ?) RETURNING id",
                (uid, uid, at, at, at),
            ).fetchone()["id"]
            store._execute(
                conn,
                "INSERT INTO report_worklist (job_id, version, status, critical, priority_rank,"
                " site, received_at, patient_name, patient_id, summary, updated_at)"
                " VALUES (?, 1, 'preliminary', ?, ?, ?, ?, 'Doe^Jane', 'P1', 'Sinus rhythm.', ?)",
                (job_id, critical, rank, site, at, at),
            )


def ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def print_table(results: dict[str, dict[str, list[float]]], args) -> None:
    print(
        f"\n{date.today()}, `.venv/bin/python bench/overread.py --jobs {args.jobs} --open {args.open}`,"
    )
    print(f"{cpu_name()}, {os.cpu_count()} cores (shared), load average {os.getloadavg()[0]:.1f}\n")
    backends = list(results)
    print("| operation (ms) | " + " | ".join(f"{b} p50 | {b} p95" for b in backends) + " |")
    print("|---|" + "---|---|" * len(backends))
    for name in results[backends[0]]:
        cells = []
        for backend in backends:
            values = sorted(results[backend][name])
            p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
            cells += [f"{statistics.median(values):.1f}", f"{p95:.1f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
