"""Accuracy and speed of the measurement engine (model.analyze) on real ECGs, one table.

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
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import wfdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import model
from model.beats import FS
from model.decode import read_muse_measurements
from model.ecg import Ecg
from model.measure import PRE, EcgMeasurement, measure
from model.statements import COMPLETE_BBB_QRS_MS, NORMAL_RHYTHM_CODES

# tests/test_measure_real.py loads this file by path, so bench/ is not always sys.path[0].
sys.path.insert(0, str(REPO / "bench"))
import cart_agreement
import measure_rhythm
from machine import cpu_name
from scores import Counts

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
# (|mean| <=, SD <=) in ms, IEC 60601-2-25:2011 for global durations and intervals.
IEC_LIMITS = {"p": (10, 15), "pr": (10, 10), "qrs": (10, 10), "qt": (25, 30)}
INTERVAL_KEYS = {"p": "p_duration_ms", "pr": "pr_ms", "qrs": "qrs_ms", "qt": "qt_ms"}
INTERVAL_LABELS = {"p": "P duration", "pr": "PR", "qrs": "QRS", "qt": "QT"}
RHYTHM_GOAL_CODES = ("SR", "AFIB", "SBRAD", "STACH")
SPEED_GOAL_MS = 25
# PTB-XL heart_axis values beyond -30 and +90 degrees (ALAD: "abnormal left axis
# deviation"; its LAD means -30..+30, not the AHA's left axis deviation).
PTBXL_LEFT_AXIS = {"ALAD"}
PTBXL_RIGHT_AXIS = {"RAD", "ARAD"}


# ------------------------------------------------------------------ LUDB ----


@dataclass
class Wave:
    kind: str  # 'p', 'N' (QRS) or 't'
    onset: int | None
    peak: int
    offset: int | None


def ludb_waves(record: Path, lead: str) -> list[Wave]:
    """One lead's annotated waves: '(' onset, the peak symbol, ')' offset."""
    ann = wfdb.rdann(str(record), lead)
    symbols, at = ann.symbol, ann.sample
    waves = []
    for k, symbol in enumerate(symbols):
        if symbol in ("p", "N", "t"):
            onset = int(at[k - 1]) if k > 0 and symbols[k - 1] == "(" else None
            offset = int(at[k + 1]) if k + 1 < len(symbols) and symbols[k + 1] == ")" else None
            waves.append(Wave(symbol, onset, int(at[k]), offset))
    return waves


def _second_earliest(values: list[int]) -> int | None:
    """Earliest over the leads after dropping the single most extreme lead."""
    return sorted(values)[1] if len(values) >= 2 else None


def _second_latest(values: list[int]) -> int | None:
    return sorted(values)[-2] if len(values) >= 2 else None


@dataclass(frozen=True)
class ReferenceBeat:
    """One annotated beat's global edges (samples): second-earliest onset and
    second-latest offset over the leads; None where too few leads annotated it.
    qrs_median_lead: the median over the annotated leads of each lead's QRS duration,
    the decided LUDB QRS reference (issue 24): no single lead's extreme moves it."""

    centre: int
    qrs_on: int | None
    qrs_off: int | None
    p_on: int | None
    p_off: int | None
    t_off: int | None
    qrs_median_lead: float | None


def ludb_reference_beats(record: Path) -> list[ReferenceBeat]:
    """The global edges of each beat of one LUDB record.

    Beats are QRS annotations grouped across leads by their peak (within 150 ms);
    a beat counts when at least half the leads annotated it. A P wave belongs to
    the beat whose QRS follows it, a T wave to the beat whose QRS precedes it.
    """
    per_lead = {lead: ludb_waves(record, lead) for lead in LUDB_LEADS}
    qrs = sorted(
        ((w.peak, w) for waves in per_lead.values() for w in waves if w.kind == "N"),
        key=lambda item: item[0],
    )
    groups: list[list[Wave]] = []
    for peak, wave in qrs:
        if groups and peak - groups[-1][-1].peak <= 75:
            groups[-1].append(wave)
        else:
            groups.append([wave])
    beats = [g for g in groups if len(g) >= len(LUDB_LEADS) // 2]
    centres = [int(np.median([w.peak for w in g])) for g in beats]
    found = []
    for i, group in enumerate(beats):
        previous = centres[i - 1] if i > 0 else -(10**9)
        following = centres[i + 1] if i + 1 < len(centres) else 10**9

        def edges(kind: str, lo: int, hi: int) -> list[Wave]:
            waves = (w for lead_waves in per_lead.values() for w in lead_waves)
            return [w for w in waves if w.kind == kind and lo < w.peak < hi]

        p_waves = edges("p", previous, centres[i])
        found.append(
            ReferenceBeat(
                centre=centres[i],
                qrs_on=_second_earliest([w.onset for w in group if w.onset is not None]),
                qrs_median_lead=_median_lead_duration(group),
                qrs_off=_second_latest([w.offset for w in group if w.offset is not None]),
                p_on=_second_earliest([w.onset for w in p_waves if w.onset is not None]),
                p_off=_second_latest([w.offset for w in p_waves if w.offset is not None]),
                t_off=_second_latest(
                    [w.offset for w in edges("t", centres[i], following) if w.offset is not None]
                ),
            )
        )
    return found


def _median_lead_duration(group: list[Wave]) -> float | None:
    """The median over the annotated leads of each lead's QRS duration (samples)."""
    durations = [w.offset - w.onset for w in group if w.onset is not None and w.offset is not None]
    return float(np.median(durations)) if durations else None


def ludb_reference(record: Path, fs: float = 500.0) -> dict[str, float | None]:
    """Global P duration, PR, QRS, QT (ms) of one LUDB record: the median over its
    annotated beats."""
    return reference_intervals(ludb_reference_beats(record), fs)


def reference_intervals(beats: list[ReferenceBeat], fs: float = 500.0) -> dict[str, float | None]:
    """Median over the beats of P duration, PR and QT (global: earliest onset, latest
    offset) and of the QRS (per beat the median lead's; qrs_extreme: the global one,
    which the edge rows split into onset and offset)."""
    p_d, pr, qrs_d, qrs_extreme, qt = [], [], [], [], []
    for beat in beats:
        if beat.p_on is not None and beat.p_off is not None:
            p_d.append(beat.p_off - beat.p_on)
        if beat.qrs_median_lead is not None:
            qrs_d.append(beat.qrs_median_lead)
        if beat.qrs_on is None or beat.qrs_off is None:
            continue
        qrs_extreme.append(beat.qrs_off - beat.qrs_on)
        if beat.p_on is not None:
            pr.append(beat.qrs_on - beat.p_on)
        if beat.t_off is not None:
            qt.append(beat.t_off - beat.qrs_on)

    def median_ms(values: list[int]) -> float | None:
        return float(np.median(values)) * 1000.0 / fs if values else None

    return {
        "p": median_ms(p_d),
        "pr": median_ms(pr),
        "qrs": median_ms(qrs_d),
        "qt": median_ms(qt),
        "qrs_extreme": median_ms(qrs_extreme),
    }


def ludb_is_paced(record: Path) -> bool:
    header = record.with_suffix(".hea").read_text().lower()
    return "pacing" in header or "p-synchrony" in header


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


def neurokit_lead_ii(ecg: Ecg) -> dict[str, float | None]:
    """Baseline: neurokit2 R peaks and DWT delineation on lead II alone, median over beats."""
    import neurokit2 as nk

    fs = ecg.sampling_rate
    x = ecg.lead("II").astype(float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, peaks = nk.ecg_peaks(x, sampling_rate=fs)
            _, waves = nk.ecg_delineate(x, peaks, sampling_rate=fs, method="dwt")
    except (ValueError, IndexError, ZeroDivisionError):
        return dict.fromkeys(IEC_LIMITS)

    def median_ms(start: str, stop: str) -> float | None:
        d = np.asarray(waves[stop], float) - np.asarray(waves[start], float)
        d = d[np.isfinite(d)]
        return float(np.median(d)) * 1000.0 / fs if d.size else None

    return {
        "p": median_ms("ECG_P_Onsets", "ECG_P_Offsets"),
        "pr": median_ms("ECG_P_Onsets", "ECG_R_Onsets"),
        "qrs": median_ms("ECG_R_Onsets", "ECG_R_Offsets"),
        "qt": median_ms("ECG_R_Onsets", "ECG_T_Offsets"),
    }


# ------------------------------------------------------------- synthetic ----

# Quantity -> the field named alike in SyntheticSpec (the truth) and Measurements.
SYNTHETIC_KEYS = {
    **INTERVAL_KEYS,
    "p_axis": "p_axis_deg",
    "qrs_axis": "qrs_axis_deg",
    "t_axis": "t_axis_deg",
}
SYNTHETIC_LABELS = {
    **INTERVAL_LABELS,
    "p_axis": "P axis",
    "qrs_axis": "QRS axis",
    "t_axis": "T axis",
}


def synthetic_specs() -> list:
    """A grid of rates, intervals and axes, at the three sampling rates the engine accepts."""
    from model.synthetic import SyntheticSpec

    specs = []
    shapes = [(50, 200, 100, 440), (70, 160, 90, 400), (95, 140, 110, 360), (120, 140, 80, 310)]
    axes = [(60, 45, 40), (30, -60, 10), (75, 110, 70)]
    for hr, pr, qrs, qt in shapes:
        for p_axis, qrs_axis, t_axis in axes:
            specs.append(
                SyntheticSpec(
                    heart_rate_bpm=hr,
                    pr_ms=pr,
                    qrs_ms=qrs,
                    qt_ms=qt,
                    p_axis_deg=p_axis,
                    qrs_axis_deg=qrs_axis,
                    t_axis_deg=t_axis,
                )
            )
    return specs


def random_synthetic_specs(n: int = 24, seed: int = 7) -> list:
    """ECGs drawn at random over resting ranges (rate 45-130/min, PR 120-220, QRS
    70-130 ms, a rate-appropriate QT, any sinus P and T axis, QRS axis -60..+110):
    a check that the engine was not fitted to the grid above. At high rates with a
    long PR the P wave starts at or on the end of the previous T wave."""
    from model.synthetic import SyntheticSpec

    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        hr = rng.uniform(45, 130)
        specs.append(
            SyntheticSpec(
                heart_rate_bpm=round(hr),
                pr_ms=round(rng.uniform(120, 220)),
                qrs_ms=round(rng.uniform(70, 130)),
                qt_ms=round(440 - (hr - 50) * 1.6 + rng.uniform(-20, 20)),
                p_axis_deg=round(rng.uniform(0, 80)),
                qrs_axis_deg=round(rng.uniform(-60, 110)),
                t_axis_deg=round(rng.uniform(0, 80)),
            )
        )
    return specs


def fast_synthetic_specs() -> list:
    """Fast rates (100-160/min) with PRs of 140-260 ms: the P wave starts from 120 ms
    after to 170 ms before the end of the T wave, where an engine that cannot tell
    them apart reads one for the other. Three axis sets take turns."""
    from model.synthetic import SyntheticSpec

    axes = [(60, 45, 40), (20, -30, 60), (75, 90, 10)]
    specs = []
    for hr in (100, 115, 130, 145, 160):
        for pr in (140, 180, 220, 260):
            for qt_offset in (-20, 20):
                p_axis, qrs_axis, t_axis = axes[len(specs) % len(axes)]
                specs.append(
                    SyntheticSpec(
                        heart_rate_bpm=hr,
                        pr_ms=pr,
                        qt_ms=round(440 - (hr - 50) * 1.6 + qt_offset),
                        p_axis_deg=p_axis,
                        qrs_axis_deg=qrs_axis,
                        t_axis_deg=t_axis,
                    )
                )
    return specs


# Spec set, its name, the sampling rates it is measured at, and whether a null is
# a right answer there (a P onset or T end hidden by the neighbouring wave).
SYNTHETIC_GROUPS = {
    "grid, 500 and 1000 Hz": (synthetic_specs, (500.0, 1000.0), False),
    "grid, 250 Hz": (synthetic_specs, (250.0,), False),
    "24 random, 500 Hz": (random_synthetic_specs, (500.0,), True),
    "24 random, 250 Hz": (random_synthetic_specs, (250.0,), True),
    "40 fast, P wave near the T wave, 500 Hz": (fast_synthetic_specs, (500.0,), True),
}


def run_synthetic() -> dict[str, dict[str, dict[str, list[float]]]]:
    """Engine and baseline errors against the exactly known truth of synthetic ECGs,
    per group of sampling rates: {group: {"engine" | "baseline": {quantity: errors}}}."""
    from model.synthetic import synthetic_ecg

    errors: dict[str, dict[str, dict[str, list[float]]]] = {}
    for group, (specs, rates, _) in SYNTHETIC_GROUPS.items():
        found = errors.setdefault(group, {"engine": {}, "baseline": {}})
        for spec in specs():
            truth = {key: getattr(spec, name) for key, name in SYNTHETIC_KEYS.items()}
            for fs in rates:
                ecg = synthetic_ecg(spec, sampling_rate=fs)
                measured = model.analyze(ecg).measurements
                for key, field_name in SYNTHETIC_KEYS.items():
                    value = getattr(measured, field_name)
                    if value is not None:
                        found["engine"].setdefault(key, []).append(value - truth[key])
                for key, value in neurokit_lead_ii(ecg).items():
                    if value is not None:
                        found["baseline"].setdefault(key, []).append(value - truth[key])
    return errors


def synthetic_rows(errors: dict[str, dict[str, dict[str, list[float]]]]) -> list[list[str]]:
    rows = []
    for group, found in errors.items():
        specs, rates, nulls_allowed = SYNTHETIC_GROUPS[group]
        n = len(specs()) * len(rates)
        goal = "each measured within ±{}" + (", or null" if nulls_allowed else "")
        for key in SYNTHETIC_KEYS:
            engine = found["engine"].get(key, [])
            baseline = found["baseline"].get(key, [])
            limit = 5 if key.endswith("axis") else 4
            unit = "°" if key.endswith("axis") else "ms"
            worst = _largest(engine)
            rows.append(
                [
                    "Synthetic",
                    f"{SYNTHETIC_LABELS[key]} Δ mean ± SD {unit}, largest ({group})",
                    f"{len(engine)} of {n}",
                    f"{_mean_sd(engine)}, largest {worst:.0f}",
                    f"{_mean_sd(baseline)}, largest {_largest(baseline):.0f}" if baseline else "",
                    goal.format(limit),
                    "yes" if (nulls_allowed or len(engine) == n) and worst <= limit else "no",
                ]
            )
    return rows


def _largest(errors: list[float]) -> float:
    return max((abs(e) for e in errors), default=float("nan"))


# ------------------------------------------------------------------- GE -----

# GE's RestingECGMeasurements element -> (label, engine measurement), in table order.
# GE's QTCorrected is Bazett's; GE gives no P duration, only POnset and POffset.
GE_KEYS = {
    "VentricularRate": ("Heart rate", "heart_rate_bpm"),
    "PRInterval": ("PR", "pr_ms"),
    "QRSDuration": ("QRS", "qrs_ms"),
    "QTInterval": ("QT", "qt_ms"),
    "QTCorrected": ("QTc", "qtc_bazett_ms"),
    "PAxis": ("P axis", "p_axis_deg"),
    "RAxis": ("QRS axis", "qrs_axis_deg"),
    "TAxis": ("T axis", "t_axis_deg"),
}


def ge_p_duration_ms(ge: dict[str, float], median_fs: float) -> float | None:
    """GE's P duration: its POffset - POnset, samples of its median beat at median_fs."""
    if "POnset" not in ge or "POffset" not in ge:
        return None
    return (ge["POffset"] - ge["POnset"]) * 1000 / median_fs


def run_muse() -> list[tuple[str, str, float | None, float | None]]:
    """(file, quantity, GE, engine) for each GE MUSE XML file and measurement."""
    rows = []
    for path in sorted((DATA / "vendor" / "muse").glob("*.xml")):
        ecg = model.load(path)
        ge = read_muse_measurements(path)
        values = model.analyze(ecg).measurements
        for tag, (label, key) in GE_KEYS.items():
            rows.append((path.name, label, ge.get(tag), getattr(values, key)))
            if tag == "VentricularRate":
                ge_p = ge_p_duration_ms(ge, ecg.median_sampling_rate)
                rows.append((path.name, "P duration", ge_p, values.p_duration_ms))
    return rows


# GE's fiducial points on its own median beat (RestingECGMeasurements, samples at
# 500 Hz) -> the engine's global fiducial.
GE_EDGES = {
    "POnset": "p_on",
    "POffset": "p_off",
    "QOnset": "qrs_on",
    "QOffset": "qrs_off",
    "TOffset": "t_off",
}
GE_ALIGN_SEARCH = 60  # samples either side of the QRS fiducial's expected place


def ge_edge_differences(path: Path) -> dict[str, float | None]:
    """Engine minus GE per global edge (ms), on the same beat: the engine's median beat
    is laid onto GE's where their QRS complexes correlate best, and its fiducials
    compared with GE's own fiducial points (GE_EDGES). Shows which edge an
    interval difference comes from."""
    ge = read_muse_measurements(path)
    ecg = model.load(path)
    engine = measure(ecg)
    if ecg.median_beats is None or engine.fiducials is None or ecg.median_sampling_rate != FS:
        return {}
    offset = _median_offset(engine.median, ecg.median_beats, ge["QOnset"], engine.fiducials.qrs_on)
    differences: dict[str, float | None] = {}
    for tag, key in GE_EDGES.items():
        at = getattr(engine.fiducials, key)
        known = at is not None and tag in ge
        differences[tag] = (at - offset - ge[tag]) * 1000 / FS if known else None
    return differences


def _median_offset(engine: np.ndarray, ge: np.ndarray, ge_qrs_on: float, qrs_on: int) -> int:
    """Engine median sample minus GE median sample for the same moment: the lag that best
    correlates the two QRS complexes (120 ms from each one's QRS onset) over the leads."""
    width = round(0.12 * FS)
    start = int(ge_qrs_on)
    reference = ge[:, start : start + width]
    reference = reference - reference.mean(axis=1, keepdims=True)
    best, best_lag = -np.inf, qrs_on - start
    for lag in range(qrs_on - start - GE_ALIGN_SEARCH, qrs_on - start + GE_ALIGN_SEARCH + 1):
        window = engine[:, start + lag : start + lag + width]
        if start + lag < 0 or window.shape[1] < width:
            continue
        window = window - window.mean(axis=1, keepdims=True)
        norm = np.sqrt((window**2).sum() * (reference**2).sum())
        score = float((window * reference).sum() / norm)
        if score > best:
            best, best_lag = score, lag
    return best_lag


def ge_edge_rows() -> list[list[str]]:
    paths = sorted((DATA / "vendor" / "muse").glob("*.xml"))
    found = {path.name: ge_edge_differences(path) for path in paths}
    rows = []
    for tag in GE_EDGES:
        cells = [_fmt(diffs.get(tag)) for diffs in found.values()]
        rows.append(
            [
                "GE MUSE XML",
                f"{tag} on GE's median beat, engine − GE ms ({', '.join(found)})",
                str(len(found)),
                "; ".join(cells),
                "",
                "",
                "",
            ]
        )
    return rows


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


def _mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    return f"{np.mean(values):+.1f} ± {np.std(values, ddof=1):.1f}"


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
                    _mean_sd(values),
                    _mean_sd(baseline) if baseline else "",
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
            _mean_sd(edges[key]),
            "",
            "",
            "",
        ]
        for key, label in EDGE_ROWS.items()
    ]


def width_rows(widths: QrsWidths) -> list[list[str]]:
    def wide(values: list[float]) -> str:
        count = sum(v >= COMPLETE_BBB_QRS_MS for v in values)
        return f"{count} (median QRS {np.median(values):.0f} ms)" if values else "n/a"

    quantity = (
        f"QRS ≥ {COMPLETE_BBB_QRS_MS} ms in records diagnosed without a conduction "
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
                f"{_fmt(engine)} vs GE {_fmt(ge)}" + ("" if diff is None else f" (Δ {diff:+.0f})")
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


def _fmt(value: float | None) -> str:
    return "null" if value is None else f"{value:.0f}"


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
    muse = run_muse()
    rows += muse_rows(muse) + cart_agreement.spread_rows(muse, "GE MUSE XML", "GE")
    rows += ge_edge_rows()
    carts = cart_agreement.run_carts(DATA)
    rows += cart_agreement.cart_rows(carts)
    rows += cart_agreement.spread_rows(muse + carts, "All carts", "cart (GE, Philips, Mortara)")
    rows += measure_rhythm.synthetic_rows(measure_rhythm.run_synthetic_rhythms())
    rows += measure_rhythm.ludb_rows(DATA, args.ludb) + measure_rhythm.cinc_rows(DATA)
    counts, seconds, rates, records = run_ptbxl(args.ptbxl)
    rows += ptbxl_rows(counts, args.ptbxl)
    rows += rate_limit_rows(rates)
    rows += measure_rhythm.ptbxl_rhythm_rows(records) + measure_rhythm.false_positive_rows(records)
    rows += speed_rows(seconds, time_baseline(args.baseline_speed))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
