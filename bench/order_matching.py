"""What matching ECGs to orders adds per job, against the job's own processing, same run.

A SQLite store holding 10,000 open orders (10,000 patients). Per job, the gateway now
(a) looks the order up at intake for its priority (gateway/processing/order_match.py,
`intake_priority`) and (b) matches it in the worker before routing (`link_order`): for an
unordered ECG three indexed queries; for an ordered one also the package saved again and
the order attached. The baseline is what the worker does for the job anyway: decode,
measure, render PNG and PDF, save the package (`process_jobs`), for the same PTB-XL ECG.

    .venv/bin/python bench/order_matching.py [--orders 10000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name

import model
from gateway.intake.accept import HeaderFacts
from gateway.processing.job import process_jobs
from gateway.processing.order_link import link_order
from gateway.processing.order_match import OrderMatching, intake_priority
from gateway.store import NewJob, SqliteStore
from gateway.store.order_records import NewOrder, OrderReference
from model.dicom_write import ecg_to_dicom
from model.engine import EngineChoice

RECORD = REPO.parent / "shared" / "data" / "ptbxl" / "records500" / "00000" / "00001_hr"


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    store = SqliteStore(work / "gateway.sqlite3")
    for n in range(args.orders):
        ref = OrderReference(placer_order_number=f"P{n}", placer_authority="HIS")
        store.add_order(NewOrder(reference=ref, patient_id=f"MRN{n}", scheduled_at=time.time()))
    spool = work / "ecg.dcm"
    ecg_to_dicom(model.load(RECORD)).save_as(spool, enforce_file_format=True)
    settings = OrderMatching()
    prioritise = intake_priority(store, settings)

    processing, unordered, ordered, at_intake = [], [], [], []
    for n in range(args.repeat):
        job_id = store.add_job(
            NewJob(f"1.2.{n}", "1.2.840.10008.5.1.4.1.1.9.1.1", f"{n:064d}", str(spool),
                   "ecg-waveform", "CART", "ECGGW", "bench"),
        ).job_id  # fmt: skip
        job = store.get_job(job_id)
        started = time.perf_counter()
        [result] = process_jobs([job], work / "reports", EngineChoice())
        processing.append(time.perf_counter() - started)
        package = result.package
        header = HeaderFacts("ECG", "", "", "", f"MRN{n}", "", package.metadata.study_instance_uid)
        started = time.perf_counter()
        prioritise(header)
        at_intake.append(time.perf_counter() - started)
        now = {"acquisition_time": None}  # taken now: within the orders' window
        walk_in = replace(package, metadata=replace(package.metadata, patient_id="NOBODY", **now))
        started = time.perf_counter()
        link_order(store, job, walk_in, result.report_dir, settings)
        unordered.append(time.perf_counter() - started)
        mine = replace(package, metadata=replace(package.metadata, patient_id=f"MRN{n}", **now))
        started = time.perf_counter()
        linked = link_order(store, job, mine, result.report_dir, settings)
        ordered.append(time.perf_counter() - started)
        assert linked.order is not None and linked.order.placer_order_number == f"P{n}"
    store.close()

    print(f"{date.today()}, {cpu_name()}, {args.orders} open orders, median of {args.repeat}")
    print("| per job | ms |")
    print("|---|---|")
    print(f"| baseline: processing (decode, measure, render, save) | {_ms(processing)} |")
    print(f"| intake: order lookup for the priority | {_ms(at_intake)} |")
    print(f"| worker: matching an unordered ECG | {_ms(unordered)} |")
    print(
        f"| worker: matching an ordered ECG (package saved again, order attached) | {_ms(ordered)} |"
    )


if __name__ == "__main__":
    main()
