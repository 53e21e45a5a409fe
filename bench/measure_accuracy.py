"""Accuracy and speed of the measurement engine (model.analyze) on real ECGs, one table.

Its parts live beside it: synthetic_intervals.py (0), ludb_reference.py (1's
reference), ge_muse.py and cart_agreement.py (2), measure_rhythm.py (the rhythm rows),
neurokit_baseline.py (the baseline), scores.py (what they share).

0. Synthetic ECGs (model.synthetic) with exactly known intervals and axes, at 250,
   500 and 1000 Hz: the error of each measurement (goal: within 4 ms / 5 degrees).
   A grid, 24 drawn at random, and 40 at 100-160/min where the P wave starts near,
   at or on the end of the T wave (there a null is a right answer, a guess is not).
1. LUDB (160 records): global P duration, PR, QRS and QT against the cardiologists'
   per-lead annotations, next to the IEC 60601-2-25 limits for global durations and
   intervals (mean difference within +-10 ms for P, PR and QRS and +-25 ms for QT;
   SD <= 15, 10, 10, 30 ms). Reference per beat for P and PR and QT: earliest onset
   and latest offset over the leads, after dropping the single most extreme lead;
   for the QRS (decided in issue 24) the median over the annotated leads of each
   lead's QRS duration; then the median over the beats. Baseline in the same run:
   neurokit2's DWT delineation of lead II alone. Then each global edge (QRS onset and offset, P onset and offset, T end)
   on its own, engine minus reference per beat, median per record: which edge an
   interval's bias comes from.
   The LUDB copy in shared/data has every lead min-max normalised to a range of 1
   (not mV; Einthoven's law no longer holds), which changes how much each lead
   weighs in the multi-lead fiducials: the same normalisation applied to the 2 GE
   and 30 CinC 2021 records moves the engine's QRS by -0.9 +- 4.4 ms and its PR by
   -2.2 +- 5.2 ms, part of the LUDB SDs. A check of the reference itself: in the
   records whose diagnosis (ludb.csv) names no conduction abnormality, how many
   have a QRS of 120 ms or more, which would itself be one (bundle branch block or
   intraventricular conduction delay), by the engine and by the reference. And the
   engine's heart rate by the cardiologists' sinus label: where their rate limits lie.
2. GE MUSE XML (vendor/muse): the engine on the waveform of each file against GE's
   own measurements in the same file (GE's P duration: its POffset - POnset), and
   the engine's fiducials laid onto GE's median beat against GE's own fiducial
   points (which edge a difference comes from). Then the other vendor files that carry
   their cart's own measurements (bench/cart_agreement.py: two Philips, one Mortara),
   and the 75th percentile of |engine - cart| over all five carts.
3. PTB-XL (records 1-400, 500 Hz): precision, recall and F1 of each statement
   against scp_codes (a code present in scp_codes counts as positive, whatever
   its likelihood: PTB-XL's likelihood 0 means "unknown", not "absent"); LAD/RAD
   against the heart_axis column. The rhythm goal codes are scored a second time
   on the records whose scp_codes hold any rhythm statement (scp_statements.csv
   rhythm = 1): 18 of the 400 carry none although their reports name a rhythm.
4. Speed: ms per 10 s 12-lead ECG on one pinned core (median, p95), engine and
   baseline, in CPU time of the process (time.process_time): on a machine shared
   with other jobs, wall time measures them too.

    .venv/bin/python bench/measure_accuracy.py [--ludb N] [--ptbxl N]
"""

from __future__ import annotations

import os

# One core, as the speed goal says; set before numpy loads its thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import ast
import csv
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import model
from model.beats import FS, WIDE_QRS_MS
from model.measure import PRE, EcgMeasurement, measure
from model.statements import NORMAL_RHYTHM_CODES

# tests/test_measure_real.py loads this file by path, so bench/ is not always sys.path[0].
sys.path.insert(0, str(REPO / "bench"))
import cart_agreement
import measure_rhythm
import paced_rhythms
from ge_muse import ge_edge_rows, run_muse
from ludb_reference import ReferenceBeat, ludb_is_paced, ludb_reference_beats, reference_intervals
from machine import cpu_name
from neurokit_baseline import neurokit_lead_ii
from scores import INTERVAL_KEYS, INTERVAL_LABELS, Counts, fmt_value, mean_sd
from synthetic_intervals import run_synthetic, synthetic_rows

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
# (|mean| <=, SD <=) in ms, IEC 60601-2-25:2011 for global durations and intervals.
IEC_LIMITS = {"p": (10, 15), "pr": (10, 10), "qrs": (10, 10), "qt": (25, 30)}
RHYTHM_GOAL_CODES = ("SR", "AFIB", "SBRAD", "STACH")
SPEED_GOAL_MS = 25
# PTB-XL heart_axis values beyond -30 and +90 degrees (ALAD: "abnormal left axis
# deviation"; its LAD means -30..+30, not the AHA's left axis deviation).
PTBXL_LEFT_AXIS = {"ALAD"}
PTBXL_RIGHT_AXIS = {"RAD", "ARAD"}


# ------------------------------------------------------------------ LUDB ----


@dataclass
class Agreement:
    """Differences (engine - reference) per interval, and how often either was null."""

    differences: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in IEC_LIMITS})
    engine_null: dict[str, int] = field(default_factory=lambda: dict.fromkeys(IEC_LIMITS, 0))

    def add(self, measured: dict[str, float | None], reference: dict[str, float | None]) -> None:
        for key in IEC_LIMITS:
            if reference[key] is None:
                continue
            if measured[key] is None:
                self.engine_null[key] += 1
            else:
                self.differences[key].append(measured[key] - reference[key])


# Global edges scored one by one (Fiducials and ReferenceBeat share the names), to
# show which edge an interval's difference comes from.
EDGES = {
    "qrs_on": "QRS onset",
    "qrs_off": "QRS offset",
    "p_on": "P onset",
    "p_off": "P offset",
    "t_off": "T end",
}
EDGE_ROWS = {**EDGES, "qrs_extreme": "QRS against the global (extreme-lead) annotated QRS,"}


def ludb_conduction_normal() -> set[int]:
    """LUDB records whose cardiologists' diagnosis lists no conduction abnormality."""
    with (DATA / "ludb" / "ludb.csv").open(newline="") as f:
        return {
            int(row["ID"])
            for row in csv.DictReader(f)
            if not row["Conduction abnormalities"].strip()
        }


LUDB_SINUS_LABELS = ("Sinus bradycardia", "Sinus rhythm", "Sinus tachycardia")


def ludb_sinus_rates(limit: int) -> dict[str, list[int]]:
    """The engine's heart rate of each unpaced LUDB record by its cardiologists' sinus
    label (the first line of its rhythm): where their rate limits lie."""
    with (DATA / "ludb" / "ludb.csv").open(newline="") as f:
        rhythms = {int(row["ID"]): row["Rhythms"].strip() for row in csv.DictReader(f)}
    rates: dict[str, list[int]] = {label: [] for label in LUDB_SINUS_LABELS}
    for number in range(1, limit + 1):
        label = rhythms.get(number, "").split("\n")[0]
        record = DATA / "ludb" / "data" / str(number)
        if label not in rates or ludb_is_paced(record):
            continue
        rate = measure(model.load(record)).values.heart_rate_bpm
        if rate is not None:
            rates[label].append(rate)
    return rates


def sinus_rate_rows(rates: dict[str, list[int]]) -> list[list[str]]:
    ranges = [f"{label.lower()} {min(v)}–{max(v)}/min" for label, v in rates.items() if v]
    sinus = rates["Sinus rhythm"]
    slower = sum(rate < max(rates["Sinus bradycardia"], default=0) for rate in sinus)
    faster = sum(rate > min(rates["Sinus tachycardia"], default=1000) for rate in sinus)
    ranges.append(
        f"sinus rhythms slower than the fastest bradycardia {slower}, "
        f"faster than the slowest tachycardia {faster}"
    )
    n = str(sum(len(found) for found in rates.values()))
    quantity = "engine heart rate by the cardiologists' sinus label (without pacemaker)"
    return [["LUDB", quantity, n, "; ".join(ranges), "", "", ""]]


@dataclass
class QrsWidths:
    """Global QRS (ms) of the unpaced records diagnosed without a conduction abnormality."""

    engine: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    extreme: list[float] = field(default_factory=list)


def run_ludb(limit: int) -> tuple[dict[str, Agreement], dict[str, list[float]], QrsWidths]:
    """Engine and baseline on LUDB: all records, and records without a pacemaker; the
    engine's edge differences per record without a pacemaker; and the QRS widths of
    the records without a conduction abnormality."""
    results = {name: Agreement() for name in ("engine", "engine_unpaced", "baseline")}
    edges: dict[str, list[float]] = {key: [] for key in EDGE_ROWS}
    widths = QrsWidths()
    conduction_normal = ludb_conduction_normal()
    for number in range(1, limit + 1):
        record = DATA / "ludb" / "data" / str(number)
        ecg = model.load(record)
        reference_beats = ludb_reference_beats(record)
        reference = reference_intervals(reference_beats)
        engine = measure(ecg)
        measured = {k: getattr(engine.values, v) for k, v in INTERVAL_KEYS.items()}
        results["engine"].add(measured, reference)
        if not ludb_is_paced(record):
            results["engine_unpaced"].add(measured, reference)
            for key, value in edge_differences(engine, reference_beats).items():
                edges[key].append(value)
            if None not in (reference["qrs_extreme"], engine.values.qrs_ms):
                edges["qrs_extreme"].append(engine.values.qrs_ms - reference["qrs_extreme"])
            if number in conduction_normal and None not in (engine.values.qrs_ms, reference["qrs"]):
                widths.engine.append(engine.values.qrs_ms)
                widths.reference.append(reference["qrs"])
                widths.extreme.append(reference["qrs_extreme"])
        results["baseline"].add(neurokit_lead_ii(ecg), reference)
    return results, edges, widths


def edge_differences(engine: EcgMeasurement, beats: list[ReferenceBeat]) -> dict[str, float]:
    """Median over the dominant beats of engine edge - annotated edge (ms), per edge.

    The engine's fiducials lie on its median beat (PRE samples before each beat's
    position, at 500 Hz as LUDB is); a reference beat matches a dominant beat whose
    position is within 120 ms of its centre.
    """
    fiducials = engine.fiducials
    if fiducials is None or engine.beats is None:
        return {}
    differences: dict[str, list[int]] = {key: [] for key in EDGES}
    centres = np.array([beat.centre for beat in beats])
    for position in engine.beats.dominant:
        if centres.size == 0:
            break
        nearest = int(np.argmin(np.abs(centres - position)))
        if abs(centres[nearest] - position) > 60:
            continue
        for key in EDGES:
            ours, theirs = getattr(fiducials, key), getattr(beats[nearest], key)
            if ours is not None and theirs is not None:
                differences[key].append(position + ours - PRE - theirs)
    return {k: float(np.median(v)) * 1000.0 / FS for k, v in differences.items() if v}


# ---------------------------------------------------------------- PTB-XL ----


def ptbxl_rhythm_codes() -> set[str]:
    with (DATA / "ptbxl" / "scp_statements.csv").open(newline="") as f:
        return {row[""] for row in csv.DictReader(f) if row["rhythm"] == "1.0"}


def ptbxl_database(limit: int) -> list[dict[str, str]]:
    """The first `limit` rows of ptbxl_database.csv."""
    with (DATA / "ptbxl" / "ptbxl_database.csv").open(newline="") as f:
        return list(csv.DictReader(f))[:limit]


@dataclass(frozen=True)
class SinusRate:
    """One record's rate, whether the engine found a sinus rhythm, and whether PTB-XL
    codes it SBRAD / STACH."""

    heart_rate_bpm: int | None
    sinus: bool
    sbrad: bool
    stach: bool


# (ptbxl_database row, truth codes, the engine's report, the baseline's rhythm codes)
PtbxlRecord = measure_rhythm.PtbxlRecord


def run_ptbxl(
    limit: int,
) -> tuple[dict[str, Counts], list[float], list[SinusRate], list[PtbxlRecord]]:
    """Per-statement counts against scp_codes / heart_axis, the ms per analysis,
    each record's rate and sinus finding (to ask what any rate limit could reach),
    and each record's row, truth codes and report (for bench/measure_rhythm.py).

    Keys "<code> (rhythm-coded)" count the rhythm goal codes on the records that
    carry a rhythm statement only; "<code> (baseline)" and "<code> (rhythm-coded,
    baseline)" the same for measure_rhythm.baseline_rhythm (not timed here).
    """
    rhythm_codes = ptbxl_rhythm_codes()
    counts: dict[str, Counts] = {}
    seconds: list[float] = []
    rates: list[SinusRate] = []
    records: list[PtbxlRecord] = []
    for row in ptbxl_database(limit):
        ecg = model.load(DATA / "ptbxl" / row["filename_hr"])
        start = time.process_time()
        report = model.analyze(ecg)
        seconds.append(time.process_time() - start)
        truth = set(ast.literal_eval(row["scp_codes"]))
        axis = row["heart_axis"]
        if axis in PTBXL_LEFT_AXIS:
            truth.add("LAD")
        if axis in PTBXL_RIGHT_AXIS:
            truth.add("RAD")
        predicted = set(report.codes)
        simple = measure_rhythm.baseline_rhythm(ecg)
        records.append((row, truth, report, simple))
        rates.append(
            SinusRate(
                report.measurements.heart_rate_bpm,
                bool(predicted & NORMAL_RHYTHM_CODES),
                "SBRAD" in truth,
                "STACH" in truth,
            )
        )
        for code in predicted | truth:
            if code in ("LAD", "RAD") and not axis:
                continue  # heart_axis is empty for most records: no truth to score against
            counts.setdefault(code, Counts()).add(code in predicted, code in truth)
        coded = bool(truth & rhythm_codes)
        for code in RHYTHM_GOAL_CODES:
            counts.setdefault(f"{code} (baseline)", Counts()).add(code in simple, code in truth)
            if coded:
                for key, found in (("rhythm-coded", predicted), ("rhythm-coded, baseline", simple)):
                    counts.setdefault(f"{code} ({key})", Counts()).add(code in found, code in truth)
    return counts, seconds, rates, records


def best_rate_limit(rates: list[SinusRate], code: str) -> tuple[int, Counts]:
    """The sinus-rate limit (40-70/min below which SBRAD, 90-130/min above which STACH)
    that scores best against PTB-XL's codes, with the engine's sinus finding as it is:
    what the labels allow any limit to reach, not a setting."""
    if code == "SBRAD":
        limits, fires = range(40, 71), lambda hr, limit: hr < limit
    else:
        limits, fires = range(90, 131), lambda hr, limit: hr > limit
    best: tuple[int, Counts] | None = None
    for limit in limits:
        counts = Counts()
        for r in rates:
            predicted = r.sinus and r.heart_rate_bpm is not None and fires(r.heart_rate_bpm, limit)
            counts.add(predicted, r.sbrad if code == "SBRAD" else r.stach)
        if best is None or counts.f1 > best[1].f1:
            best = (limit, counts)
    return best


def rate_limit_rows(rates: list[SinusRate]) -> list[list[str]]:
    rows = []
    for code, word in (("SBRAD", "below"), ("STACH", "above")):
        limit, counts = best_rate_limit(rates, code)
        rows.append(
            [
                "PTB-XL",
                f"{code}: the best F1 any sinus-rate limit reaches on these labels",
                str(len(rates)),
                f"{counts.summary()} {word} {limit}/min",
                "",
                "",
                "",
            ]
        )
    return rows


def time_baseline(limit: int) -> list[float]:
    seconds = []
    for row in ptbxl_database(limit):
        ecg = model.load(DATA / "ptbxl" / row["filename_hr"])
        start = time.process_time()
        neurokit_lead_ii(ecg)
        seconds.append(time.process_time() - start)
    return seconds


# ----------------------------------------------------------------- table ----


def _iec_met(values: list[float], key: str) -> str:
    mean_limit, sd_limit = IEC_LIMITS[key]
    ok = (
        len(values) > 1
        and abs(np.mean(values)) <= mean_limit
        and np.std(values, ddof=1) <= sd_limit
    )
    return "yes" if ok else "no"


def ludb_rows(results: dict[str, Agreement]) -> list[list[str]]:
    rows = []
    for key, limit in IEC_LIMITS.items():
        for name, label in (("engine", "all records"), ("engine_unpaced", "without pacemaker")):
            agreement = results[name]
            values = agreement.differences[key]
            baseline = results["baseline"].differences[key] if name == "engine" else []
            rows.append(
                [
                    "LUDB",
                    f"{INTERVAL_LABELS[key]} Δ mean ± SD ms ({label})",
                    f"{len(values)} ({agreement.engine_null[key]} null)",
                    mean_sd(values),
                    mean_sd(baseline) if baseline else "",
                    f"±{limit[0]}, SD ≤ {limit[1]}",
                    _iec_met(values, key),
                ]
            )
    return rows


def edge_rows(edges: dict[str, list[float]]) -> list[list[str]]:
    """Which edge the interval differences come from (negative: the engine's is
    earlier), and the QRS against a reference without the extreme leads."""
    return [
        [
            "LUDB",
            f"{label} Δ mean ± SD ms (without pacemaker; engine − reference)",
            str(len(edges[key])),
            mean_sd(edges[key]),
            "",
            "",
            "",
        ]
        for key, label in EDGE_ROWS.items()
    ]


def width_rows(widths: QrsWidths) -> list[list[str]]:
    def wide(values: list[float]) -> str:
        count = sum(v >= WIDE_QRS_MS for v in values)
        return f"{count} (median QRS {np.median(values):.0f} ms)" if values else "n/a"

    quantity = (
        f"QRS ≥ {WIDE_QRS_MS} ms in records diagnosed without a conduction "
        "abnormality (without pacemaker), by the {}"
    )
    lists = {
        "engine": widths.engine,
        "median-lead reference": widths.reference,
        "global (extreme-lead) reference": widths.extreme,
    }
    return [
        ["LUDB", quantity.format(name), str(len(values)), wide(values), "", "", ""]
        for name, values in lists.items()
    ]


def muse_rows(rows: list[tuple[str, str, float | None, float | None]]) -> list[list[str]]:
    """One row per measurement: the engine's value and GE's, per file."""
    limits = {INTERVAL_LABELS[key]: mean for key, (mean, _) in IEC_LIMITS.items()}
    files = sorted({name for name, *_ in rows})
    out = []
    for label in dict.fromkeys(label for _, label, _, _ in rows):
        cells, met = [], []
        for name in files:
            ge, engine = next((g, e) for n, lab, g, e in rows if n == name and lab == label)
            diff = engine - ge if ge is not None and engine is not None else None
            cells.append(
                f"{fmt_value(engine)} vs GE {fmt_value(ge)}"
                + ("" if diff is None else f" (Δ {diff:+.0f})")
            )
            if label in limits and diff is not None:
                met.append(abs(diff) <= limits[label])
        out.append(
            [
                "GE MUSE XML",
                f"{label} ({', '.join(files)})",
                str(len(files)),
                "; ".join(cells),
                "",
                f"within ±{limits[label]}" if label in limits else "",
                ("yes" if all(met) else "no") if met else "",
            ]
        )
    return out


def ptbxl_rows(counts: dict[str, Counts], n: int) -> list[list[str]]:
    from model.statements import EMITTED_CODES

    rows = []
    for code in EMITTED_CODES:
        c = counts.get(code, Counts())
        goal = "F1 ≥ 0.9" if code in RHYTHM_GOAL_CODES else ""
        met = ("yes" if c.f1 >= 0.9 else "no") if goal else ""
        truth = "heart_axis (where given)" if code in ("LAD", "RAD") else "scp_codes"
        simple = counts[f"{code} (baseline)"].summary() if code in RHYTHM_GOAL_CODES else ""
        rows.append(["PTB-XL", f"{code} vs {truth}", str(n), c.summary(), simple, goal, met])
    for code in RHYTHM_GOAL_CODES:
        c = counts.get(f"{code} (rhythm-coded)", Counts())
        n_coded = c.tp + c.fp + c.fn + c.tn
        rows.append(
            [
                "PTB-XL",
                f"{code} vs scp_codes, records with a rhythm statement",
                str(n_coded),
                c.summary(),
                counts.get(f"{code} (rhythm-coded, baseline)", Counts()).summary(),
                "F1 ≥ 0.9",
                "yes" if c.f1 >= 0.9 else "no",
            ]
        )
    return rows


def speed_rows(engine: list[float], baseline: list[float]) -> list[list[str]]:
    """Timed on the PTB-XL records: none with --ptbxl 0."""
    if not engine:
        return []

    def stats(seconds: list[float]) -> str:
        if not seconds:
            return "n/a"
        ms = np.asarray(seconds) * 1000.0
        return f"median {np.median(ms):.1f}, p95 {np.percentile(ms, 95):.1f}"

    met = "yes" if np.median(engine) * 1000.0 <= SPEED_GOAL_MS else "no"
    return [
        [
            "Speed",
            "CPU ms per 10 s 12-lead ECG, 500 Hz, one core",
            str(len(engine)),
            stats(engine),
            stats(baseline),
            f"median ≤ {SPEED_GOAL_MS}",
            met,
        ]
    ]


def print_table(rows: list[list[str]]) -> None:
    header = ["part", "quantity", "n", "engine", "baseline: neurokit2 lead II", "goal", "met"]
    print(
        f"Measurement engine accuracy, {date.today().isoformat()}, "
        f"{platform.processor() or platform.machine()} ({cpu_name()}), one core\n"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ludb", type=int, default=160, help="LUDB records 1..N")
    parser.add_argument("--ptbxl", type=int, default=400, help="PTB-XL records 1..N")
    parser.add_argument(
        "--baseline-speed",
        type=int,
        default=50,
        help="PTB-XL records timed for the baseline (it is slow)",
    )
    args = parser.parse_args(argv)
    _pin_to_one_core()
    rows = synthetic_rows(run_synthetic())
    ludb, edges, widths = run_ludb(args.ludb)
    rows += ludb_rows(ludb) + edge_rows(edges) + width_rows(widths)
    rows += sinus_rate_rows(ludb_sinus_rates(args.ludb))
    muse = run_muse(DATA)
    rows += muse_rows(muse) + cart_agreement.spread_rows(muse, "GE MUSE XML", "GE")
    rows += ge_edge_rows(DATA)
    carts = cart_agreement.run_carts(DATA)
    rows += cart_agreement.cart_rows(carts)
    rows += cart_agreement.spread_rows(muse + carts, "All carts", "cart (GE, Philips, Mortara)")
    rows += measure_rhythm.synthetic_rows(measure_rhythm.run_synthetic_rhythms())
    rows += measure_rhythm.ludb_rows(DATA, args.ludb) + measure_rhythm.cinc_rows(DATA)
    rows += paced_rhythms.resampled_unpaced_rows(DATA, args.ludb)
    counts, seconds, rates, records = run_ptbxl(args.ptbxl)
    rows += ptbxl_rows(counts, args.ptbxl)
    rows += rate_limit_rows(rates)
    rows += measure_rhythm.ptbxl_rhythm_rows(records) + measure_rhythm.false_positive_rows(records)
    rows += speed_rows(seconds, time_baseline(args.baseline_speed))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
