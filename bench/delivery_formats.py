"""Report formats benchmark: CPU ms to build each delivered artefact for one ECG, same run.

Per ECG (PTB-XL records500, decoded, analysed and rendered before timing):
  * the HL7 v2.5.1 ORU^R01 as gateway/delivery/hl7.py writes it (ER7 via gateway/delivery/er7.py),
    against the baseline of hl7apy holding the same message in its model: parse_message
    of that ER7 and validate(), which is less than building it through hl7apy costs
    (every assigned value is parsed as ER7 there too);
  * the FHIR R4 transaction Bundle (fhir.resources, every resource validated) and its JSON.
Pinned to one CPU; CPU time of this process (time.process_time), median and p95.

Then what goes on the wire, same ECGs: the ORU's size with the report PDF (model.render_pdf)
against the same ORU with the PDF of the renderer before (bench/render.py before_pdf), how
many OBX carry the PDF (hl7.pdf: split) and how many messages pass hl7apy's strict 2.5.1
validation (tests/hl7_strict.py); the FHIR Bundle without and with the waveform
(fhir.waveform: observation, binary).

    .venv/bin/python bench/delivery_formats.py [--records 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import model
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.delivery.hl7 import build_oru, control_id, encode
from gateway.processing.package import ReportPackage
from gateway.routing import FhirOptions, Hl7Options
from model.ecg import Ecg

sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))
from hl7_strict import validated_strictly
from machine import cpu_name
from render import before_pdf

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
PTBXL = DATA / "ptbxl" / "records500" / "00000"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    packages = [package_for(record) for record in records(args.records)]
    rows = {
        "HL7 ORU^R01, ER7 writer (ours)": hl7_ours,
        "HL7 ORU^R01, hl7apy parse_message + validate (baseline)": hl7apy_model,
        "FHIR Bundle, fhir.resources + JSON": fhir_bundle,
    }
    timings = {name: cpu_ms(fn, packages, args.rounds) for name, fn in rows.items()}
    print_table(timings, len(packages), args.rounds)
    print_size_table(packages)
    return 0


def records(count: int) -> list[Path]:
    found = sorted(p.with_suffix("") for p in PTBXL.glob("*_hr.hea"))[:count]
    if not found:
        sys.exit(f"no PTB-XL records under {PTBXL}")
    return found


def package_for(record: Path) -> ReportPackage:
    ecg = model.load(record)
    report = model.analyze(ecg)
    return ReportPackage(
        job_id=1,
        kind="ecg-waveform",
        metadata=ecg.metadata,
        report=report,
        png=model.render_png(ecg),
        pdf=model.render_pdf(ecg, report=report),
        waveform=Ecg(ecg.signal, ecg.sampling_rate, ecg.lead_names),
    )


def hl7_ours(pkg: ReportPackage) -> bytes:
    return encode(build_oru(pkg, Hl7Options(), control_id(pkg, "bench")))


def hl7apy_model(pkg: ReportPackage) -> object:
    text = hl7_ours(pkg).decode()
    message = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    message.validate()
    return message


def fhir_bundle(pkg: ReportPackage) -> bytes:
    return bundle_json(build_bundle(pkg, FhirOptions()))


def cpu_ms(
    fn: Callable[[ReportPackage], object], packages: list[ReportPackage], rounds: int
) -> np.ndarray:
    fn(packages[0])  # imports and caches outside the timing
    samples = []
    for _ in range(rounds):
        for pkg in packages:
            started = time.process_time()
            fn(pkg)
            samples.append((time.process_time() - started) * 1000)
    return np.array(samples)


def print_table(timings: dict[str, np.ndarray], records: int, rounds: int) -> None:
    baseline = np.median(timings["HL7 ORU^R01, hl7apy parse_message + validate (baseline)"])
    print(
        f"\nReport formats, {date.today().isoformat()}, {cpu_name()}, "
        f"one pinned core, {records} PTB-XL ECGs x {rounds} rounds\n"
    )
    print("| artefact | median CPU ms | p95 CPU ms | vs hl7apy baseline |")
    print("|---|---:|---:|---:|")
    for name, samples in timings.items():
        median = float(np.median(samples))
        print(
            f"| {name} | {median:.2f} | {np.percentile(samples, 95):.2f} "
            f"| {baseline / median:.0f}x |"
        )


def print_size_table(packages: list[ReportPackage]) -> None:
    """KiB on the wire per message (median, largest) and what the receiver checks."""
    before = [replace(pkg, pdf=before_pdf(pkg.waveform)) for pkg in packages]
    print("\n| message | median KiB | largest KiB | OBX carrying the PDF | hl7apy strict 2.5.1 |")
    print("|---|---:|---:|---:|---:|")
    for name, group in (
        ("HL7 ORU^R01, PDF of the renderer before", before),
        ("HL7 ORU^R01, report PDF (now)", packages),
    ):
        messages = [hl7_ours(pkg).decode() for pkg in group]
        pieces = [message.count("|ED|") for message in messages]
        print(
            f"| {name} | {_kib(messages, np.median)} | {_kib(messages, max)} "
            f"| {min(pieces)}-{max(pieces)} | {sum(map(_strictly_valid, messages))}/{len(messages)} |"
        )
    for name, options in (
        ("FHIR Bundle, no waveform", FhirOptions()),
        ("FHIR Bundle + waveform Observation (SampledData)", FhirOptions(waveform="observation")),
        ("FHIR Bundle + waveform Binary (DICOM 12-lead ECG)", FhirOptions(waveform="binary")),
    ):
        bundles = [bundle_json(build_bundle(pkg, options)) for pkg in packages]
        print(f"| {name} | {_kib(bundles, np.median)} | {_kib(bundles, max)} | | |")


def _kib(messages: list, reduce: Callable) -> str:
    return f"{reduce([len(m) for m in messages]) / 1024:.0f}"


def _strictly_valid(message: str) -> bool:
    try:
        validated_strictly(message)
    except Exception:  # noqa: BLE001 - any hl7apy refusal counts as not valid
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
