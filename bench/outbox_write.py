"""File outbox benchmark: wall ms to write one report's files, same run, before and after
the outbox's writes got a deadline.

Per delivery (the four files of a file destination: FHIR JSON, HL7, PNG, PDF, built from
the real DICOM ECG and ECG image the delivery tests use): the files written atomically
and their directory fsync'd,
  * before: in the sweeping thread (gateway.durable.write_files called directly, as the
    file outbox did), with no deadline possible for a write that hangs;
  * after: by FileSender, in its writing process under `timeout_s` (the artefacts sent to
    that process, the result waited for);
  * the hand-off alone: the same files to a helper process (gateway.processes, as the
    writing process is made) and its answer, nothing written: what "after" adds, without
    the fsyncs' spread.
Alternated delivery by delivery, so all see the same disk and load; median and p95.

    .venv/bin/python bench/outbox_write.py [--deliveries 200] [--directory DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from delivery_support import package
from machine import cpu_name

from gateway.delivery import outbox, prepare
from gateway.durable import write_files
from gateway.processes import new_process_pool
from gateway.routing import FileDestination

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--directory", type=Path, default=None, help="default: a temporary one")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="outbox-bench-", dir=args.directory))
    try:
        rows, size = measure(root, args.deliveries)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(rows, size, args.deliveries, root.parent)
    return 0


def measure(root: Path, deliveries: int) -> tuple[dict[str, np.ndarray], int]:
    destination = FileDestination.model_validate({"type": "file", "directory": str(root)})
    pkg = package(DATA)
    artefacts = prepare("bench", destination, pkg)
    sender = outbox.FileSender(destination, "bench")
    helper = new_process_pool(1, preload="gateway.durable")
    try:
        sender.send(pkg, artefacts)  # the writing process started, outside the timing
        helper.submit(len, artefacts).result()
        before, after, handoff = [], [], []
        for number in range(deliveries):  # each ECG its own files, as in the gateway
            stem = f"{pkg.sop_instance_uid}.before{number}"
            files = {f"{stem}{suffix}": data for suffix, data in artefacts.items()}
            started = time.perf_counter()
            write_files(root, files)
            before.append((time.perf_counter() - started) * 1000)
            uid = f"{pkg.sop_instance_uid}.after{number}"
            ecg = replace(pkg, metadata=pkg.metadata.with_updates(sop_instance_uid=uid))
            started = time.perf_counter()
            sender.send(ecg, artefacts)
            after.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            helper.submit(len, files).result()
            handoff.append((time.perf_counter() - started) * 1000)
    finally:
        sender.close()
        helper.shutdown()
    rows = {
        "before: in the sweeping thread, no deadline": np.array(before),
        "after: in the writing process, within timeout_s": np.array(after),
        "the hand-off alone (files to the process and back, no write)": np.array(handoff),
    }
    return rows, sum(len(data) for data in artefacts.values())


def print_table(rows: dict[str, np.ndarray], size: int, deliveries: int, where: Path) -> None:
    print(
        f"{date.today()}, {cpu_name()}, {os.cpu_count()} cores, files under {where}: "
        f"{deliveries} deliveries of 4 files ({size / 1024:.0f} KiB) each way, alternated;"
        f" `python bench/outbox_write.py --deliveries {deliveries}`"
    )
    print()
    print("| file outbox write | median ms | p95 ms | vs before |")
    print("|---|---:|---:|---:|")
    base = np.median(next(iter(rows.values())))
    for name, samples in rows.items():
        median = np.median(samples)
        print(
            f"| {name} | {median:.2f} | {np.percentile(samples, 95):.2f} "
            f"| {median - base:+.2f} ms ({median / base:.2f}x) |"
        )


if __name__ == "__main__":
    sys.exit(main())
