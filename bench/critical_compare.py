"""What serial comparison and critical-result rules add to each job, against the same
pipeline without them, in the same run.

Two pipelines (store, intake, worker run in this thread, as tests/test_pipeline.py does)
take the same PTB-XL ECGs, all of one patient, so each job after the first has up to 10
finished priors in the store: (a) baseline, comparison off and `critical: {rules: []}`;
(b) the shipped defaults, comparison on, and a notify target, so a critical report also
writes its alert row. Jobs alternate between the two so machine load hits both alike.
Per job: the worker's whole run (lease, decode, measure, render PNG and PDF, save the
package, the comparison and rules, the store's prior lookup and writes, completion).

    .venv/bin/python bench/critical_compare.py [--ecgs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from test_prior_comparison import Pipeline

import model
from gateway.config import ComparisonConfig
from gateway.processing.package import ReportPackage
from gateway.routing import DEFAULT_RULES, critical_findings
from gateway.store import SqliteStore
from model.dicom_write import ecg_to_dicom
from model.serial_comparison import Prior, compare

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
BASELINE_ROUTES = """
destinations:
  outbox: {type: file, directory: outbox}
default: [outbox]
critical: {rules: []}
"""


def ecg_files(folder: Path, count: int) -> list[Path]:
    """PTB-XL records 1..count as DICOM ECGs of one patient, a day apart."""
    files = []
    start = datetime(2026, 1, 1, 8, 0)
    for number in range(1, count + 1):
        ecg = model.load(DATA / "ptbxl" / "records500" / "00000" / f"{number:05d}_hr")
        meta = ecg.metadata.with_updates(
            patient_id="BENCH-1",
            patient_id_issuer="HOSP",
            acquisition_time=start + timedelta(days=number),
            sop_instance_uid=None,
        )
        path = folder / f"{number}.dcm"
        ecg_to_dicom(replace(ecg, metadata=meta)).save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def pipeline(folder: Path, comparison: bool) -> Pipeline:
    store = SqliteStore(folder / "gateway.sqlite3")
    settings = ComparisonConfig(enabled=comparison)
    made = Pipeline(store, folder / "data", settings)
    if not comparison:
        (folder / "data" / "routes.yaml").write_text(BASELINE_ROUTES)
        made.workers._router.reload_if_changed()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ecgs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = ecg_files(root, args.ecgs)
        (root / "a").mkdir()
        (root / "b").mkdir()
        base, full = pipeline(root / "a", False), pipeline(root / "b", True)
        times: dict[str, list[float]] = {"baseline": [], "with": []}
        compared = critical = 0
        for path in files:
            for name, line in (("baseline", base), ("with", full)):
                started = time.perf_counter()
                report = line.process(path).report
                times[name].append(time.perf_counter() - started)
                if name == "with":
                    compared += report.comparison is not None
                    critical += bool(report.critical)
        print(
            f"{args.ecgs} PTB-XL ECGs (500 Hz, 12 leads, 10 s), one patient; first job of each warm-up"
        )
        print("| pipeline | per job, median (ms) | mean (ms) |")
        print("|---|---|---|")
        for name, label in (
            ("baseline", "baseline: no comparison, no critical rules"),
            ("with", "serial comparison (10 priors) + default critical rules"),
        ):
            kept = times[name][1:]
            print(
                f"| {label} | {statistics.median(kept) * 1000:.1f} | {statistics.mean(kept) * 1000:.1f} |"
            )
        added = statistics.median(times["with"][1:]) - statistics.median(times["baseline"][1:])
        print(f"| added per job (median difference) | {added * 1000:+.1f} | - |")
        print(f"compared: {compared}/{args.ecgs} reports, critical: {critical}")
        steps(full)


def steps(line: Pipeline, repeat: int = 200) -> None:
    """The added steps alone, on the last job (the patient has 10 priors by then)."""
    store = line.store
    job = store.list_jobs(limit=1)[0]
    report = ReportPackage.load(Path(job.report_dir)).report
    rules = DEFAULT_RULES
    prior = store.prior_ecg_candidates(job.patient_key, job.sop_instance_uid)[0]
    timed = {
        "store: the patient's 10 latest priors (query + JSON)": lambda: store.prior_ecg_candidates(
            job.patient_key, job.sop_instance_uid
        ),
        "compare(current, prior)": lambda: compare(
            report, Prior(prior.report, prior.sop_instance_uid)
        ),
        "critical_findings(default rules)": lambda: critical_findings(rules, report),
        "store: record_prior_ecg (one commit)": lambda: store.record_prior_ecg(
            job.id, job.patient_key, job.sop_instance_uid, None, report
        ),
    }
    print()
    print("| added step (alone) | per call (ms) |")
    print("|---|---|")
    for label, call in timed.items():
        started = time.perf_counter()
        for _ in range(repeat):
            call()
        print(f"| {label} | {(time.perf_counter() - started) / repeat * 1000:.3f} |")


if __name__ == "__main__":
    main()
