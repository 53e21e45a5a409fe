"""Decode benchmark: CPU ms to turn one file into calibrated leads, per format, against the
best other implementation available here, in the same run, with how far the two agree.

  * Philips Sierra XML 1.03/1.04: model.load against sierraecg (sierra-ecg-tools' Python
    reader, scaled by the file's resolution); agreement over the leads both return.
  * DICOM 12-lead ECG: model.load against pydicom's waveform_array (dcmread + the
    rhythm group, which applies sensitivity, correction and baseline).
  * WFDB: model.load against wfdb.rdrecord (the library model.load calls).
  * HL7 aECG and standard SCP-ECG: BioSig's save2gdf (Debian biosig-tools, C), one process
    per file writing CSV, its CPU time read from the children's rusage; the process start
    and the CSV are part of its time, so the row says how much of it that is (save2gdf on
    a tiny file). The FDA's aecg-python needs Python 3.12; PyPI has no SCP-ECG reader.
  * GE MUSE, Healforce SCP-ECG: no other reader runs here; the floor is shown instead
    (parsing the XML with the standard library, reading the bytes).
Pinned to one CPU; CPU time of this process (time.process_time), median of the rounds.

    .venv/bin/python bench/decode.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import sierraecg
import wfdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import model
from tests import scp_support

sys.path.insert(0, str(REPO / "bench"))
from machine import cpu_name

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
VENDOR = DATA / "vendor"
PTBXL = DATA / "ptbxl" / "records500" / "00000" / "00001_hr"
BIOSIG = "BioSig save2gdf (process + CSV)"


def sierra_mv(path: Path) -> dict[str, np.ndarray]:
    record = sierraecg.read_file(str(path))
    resolution_uv = 5.0  # both sample files; sierraecg returns raw codes only
    return {
        lead.label: lead.samples.astype(np.float64) * resolution_uv / 1000 for lead in record.leads
    }


def pydicom_mv(path: Path) -> dict[str, np.ndarray]:
    ds = pydicom.dcmread(path)
    samples = ds.waveform_array(0)
    labels = [
        str(c.ChannelSourceSequence[0].CodeMeaning)
        for c in ds.WaveformSequence[0].ChannelDefinitionSequence
    ]
    names = [model.decode.leads.lead_from_text(label) or label for label in labels]
    return {name: samples[:, i] / 1000 for i, name in enumerate(names)}  # uV -> mV


def wfdb_mv(path: Path) -> dict[str, np.ndarray]:
    record = wfdb.rdrecord(str(path))
    return {name: record.p_signal[:, i] for i, name in enumerate(record.sig_name)}


def biosig_mv(path: Path) -> dict[str, np.ndarray]:
    """save2gdf's CSV (uV) of the file, in mV."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        subprocess.run(["save2gdf", "-CSV", str(path), str(out)], check=True, capture_output=True)
        header = out.read_text().splitlines()[0]
        names = [column.strip('"').split(" [")[0] for column in header.split(",")]
        values = np.loadtxt(out, delimiter=",", skiprows=1, ndmin=2) / 1000.0
    return {name: values[:, i] for i, name in enumerate(names)}


def children_cpu_ms(fn: Callable[[], object], rounds: int) -> float:
    """Median CPU time of the child processes `fn` runs (user + system)."""
    times = []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        fn()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    return float(np.median(times))


def xml_floor(path: Path) -> None:
    ET.parse(path)


def bytes_floor(path: Path) -> None:
    path.read_bytes()


def agreement(ours: model.Ecg, theirs: dict[str, np.ndarray]) -> str:
    """Largest difference in uV over the leads and samples both return."""
    worst = 0.0
    for label, samples in theirs.items():
        name = model.decode.leads.lead_from_text(label) or label
        if name in ours.lead_names:
            n = min(len(samples), ours.n_samples)
            worst = max(worst, float(np.abs(ours.lead(name)[:n] - samples[:n]).max()))
    return f"{worst * 1000:.3f}"


def cpu_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return float(np.median(times))


def standard_scp(directory: Path) -> Path:
    """A standard SCP-ECG record (default Huffman table, second differences, reference beat
    not subtracted) of PTB-XL record 1, written by the tests' EN 1064 writer."""
    ecg = model.load(PTBXL)
    leads = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    codes = np.stack([np.rint(ecg.lead(n) / 0.005) for n in leads]).astype(np.int64)
    record = scp_support.Record(codes, [scp_support.SCP_LEAD_IDS[n] for n in leads])
    path = directory / "ptbxl-00001.scp"
    path.write_bytes(scp_support.build(record))
    return path


def cases(directory: Path) -> list[tuple[str, Path, str, Callable | None, Callable | None]]:
    """(format, file, baseline name, baseline reader returning mV leads or None, floor)."""
    return [
        (
            "Philips XML 1.03 (XLI)",
            VENDOR / "sierra/129DYPRG.XML",
            "sierraecg 0.4",
            sierra_mv,
            None,
        ),
        (
            "Philips XML 1.04 (XLI, UTF-16)",
            VENDOR / "sierra/2020-5-18_15-48-11.xml",
            "sierraecg 0.4",
            sierra_mv,
            None,
        ),
        (
            "DICOM 12-lead ECG",
            VENDOR / "dicom/guangxi_teaching_sinus_rhythm.dcm",
            "pydicom waveform_array",
            pydicom_mv,
            None,
        ),
        ("WFDB (PTB-XL 500 Hz)", PTBXL, "wfdb.rdrecord", wfdb_mv, None),
        (
            "HL7 aECG (HL7 example)",
            VENDOR / "aecg/fda_example_aecg.xml",
            BIOSIG,
            biosig_mv,
            None,
        ),
        (
            "GE MUSE XML",
            VENDOR / "muse/muse-sinus.xml",
            "none here; floor: ElementTree parse",
            None,
            xml_floor,
        ),
        (
            "SCP-ECG Healforce (non-compliant)",
            VENDOR / "scp/demodata/ECG_0/62.SCP",
            "none here; floor: read bytes",
            None,
            bytes_floor,
        ),
        (
            "SCP-ECG standard (Huffman, 2nd diff.)",
            standard_scp(directory),
            BIOSIG,
            biosig_mv,
            None,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, path, baseline, reader, floor in cases(Path(tmp)):
            if reader is biosig_mv and shutil.which("save2gdf") is None:
                continue
            ours = cpu_ms(lambda p=path: model.load(p), args.rounds)
            other = reader or floor
            timer = children_cpu_ms if reader is biosig_mv else cpu_ms
            theirs = timer(lambda p=path, f=other: f(p), args.rounds)
            agree = agreement(model.load(path), reader(path)) if reader else ""
            rows.append((label, ours, baseline, theirs, agree))
        if shutil.which("save2gdf"):
            tiny = scp_support.Record(np.zeros((1, 10), dtype=np.int64), [1])
            (Path(tmp) / "tiny.scp").write_bytes(scp_support.build(tiny))
            start_ms = children_cpu_ms(lambda: biosig_mv(Path(tmp) / "tiny.scp"), args.rounds)
    print(
        f"{date.today()}, {cpu_name()}, pinned to one core, Python {sys.version.split()[0]}, "
        f"median of {args.rounds} rounds, CPU ms per file"
    )
    print()
    print(
        "| format | model.load ms | other implementation | its ms | ours faster by "
        "| largest difference uV |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for label, ours, baseline, theirs, agree in rows:
        ratio = f"{theirs / ours:.1f}x" if agree else ""
        print(f"| {label} | {ours:.1f} | {baseline} | {theirs:.1f} | {ratio} | {agree} |")
    if shutil.which("save2gdf"):
        print()
        print(f"save2gdf on a 10-sample SCP-ECG file (its start-up and exit): {start_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
