"""Rhythm, ectopy and conduction rows of the measurement accuracy bench
(bench/measure_accuracy.py prints them in its one table).

1. Synthetic rhythms (bench/synthetic_rhythm_set.py), drawn with the bench seed, which no
   threshold was tuned on: every rhythm statement against
   the drawn truth, the goals (no AF on any sinus rhythm with PACs up to 40 %, AF
   recall >= 0.95) and the PAC/PVC counts against the drawn ones.
2. PTB-XL (records 1-400, the scoring set): the rhythm confusion matrix against
   scp_codes and against the report text (German or English keywords), and 1AVB,
   LVH and IRBBB precision and recall with each false-positive class's evidence.
3. CinC 2021 (30 records) and LUDB (160): the rhythm confusion matrix against their
   labels, and PAC/PVC against the extrasystoles their cardiologists name; LUDB's
   conduction labels per code with each false positive's evidence (ludb_conduction.py).
"""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ludb_conduction import conduction_rows, labelled_record
from paced_rhythms import (
    ALLOWED_ATRIAL_RHYTHMS,
    STIMULUS_SHAPES,
    atrial_rhythm_named,
    drawn_atrial_rhythm,
)
from scores import Counts
from synthetic_rhythm_set import (
    BENCH_SEED,
    CONDUCTED_RESET_GROUP,
    FREQUENT_PVC_GROUP,
    MIXED_ECTOPY_GROUP,
    MOBITZ_PAC_GROUP,
    NOISY_MOBITZ_GROUP,
    SLOW_PAC_PVC_GROUP,
    synthetic_rhythm_specs,
)

import model
from model.beats import IRREGULAR_RMSSD
from model.ecg import Ecg
from model.measure import measure
from model.report import Report
from model.rhythm_paced import PacedSpec, paced_ecg
from model.rhythm_synthetic import RhythmSpec, RhythmTruth, rhythm_ecg
from model.statement_limits import DEFAULT_LIMITS
from model.statements import interpret

RHYTHM_CLASSES = ("PACE", "AFLT", "AFIB", "STACH", "SBRAD", "SARRH", "SR")
SINUS = ("STACH", "SBRAD", "SARRH", "SR")
# The codes the baseline (baseline_rhythm) can state.
BASELINE_CODES = ("AFIB", "STACH", "SBRAD", "SR")
TEXT_SCORED = ("AFIB", "STACH", "AFLT", "SBRAD")
# (ptbxl_database row, truth codes, the engine's report, the baseline's rhythm codes)
PtbxlRecord = tuple[dict[str, str], set[str], Report, frozenset[str]]
# CinC 2021 SNOMED CT rhythm concepts (dx_mapping_scored.csv).
CINC_RHYTHMS = {
    "10370003": "PACE",
    "164890007": "AFLT",
    "164889003": "AFIB",
    "427084000": "STACH",
    "426177001": "SBRAD",
    "427393009": "SARRH",
    "426783006": "SR",
}
CINC_PAC = {"284470004", "63593006"}
CINC_PVC = {"427172004", "17338001"}
# Report text (PTB-XL's reports: German, English and Swedish; the Swedish ones lower-
# cased with their Ä/Å/Ö left upper case, so matched without them) -> rhythm, checked in
# this order: the first that matches names the rhythm. German "-ie" words are matched
# by their Swedish stem ("sinustachykardi" is in both).
REPORT_RHYTHMS = (
    ("PACE", ("schrittmacher", "pacemaker", "pacing")),
    ("AFLT", ("vorhofflattern", "atrial flutter", "maksfladder")),
    ("AFIB", ("vorhofflimmern", "atrial fibrillation", "maksflimmer")),
    ("STACH", ("sinustachykardi", "sinus tachycardia", "sinustakykardi")),
    ("SBRAD", ("sinusbradykardi", "sinus bradycardia")),
    ("SARRH", ("sinusarrhythmi", "sinus arrhythmi", "sinusarytmi")),
    ("SR", ("sinusrhythmus", "sinus rhythm", "sinusrytm")),
)


def rhythm_class(codes: set[str] | list[str]) -> str:
    """The one rhythm a set of codes names, by RHYTHM_CLASSES' priority; 'none' without."""
    return next((c for c in RHYTHM_CLASSES if c in codes), "none")


def report_rhythm(text: str) -> str | None:
    """The rhythm a PTB-XL report names, or None where it names none."""
    lowered = text.lower()
    for code, words in REPORT_RHYTHMS:
        if any(word in lowered for word in words):
            return code
    return None


def baseline_rhythm(ecg: Ecg) -> frozenset[str]:
    """The same-run baseline of the rhythm rows, the obvious simple method: neurokit2's
    R peaks on lead II, cleaned as neurokit2's own pipeline does (on the raw lead it
    finds irregular RRs in 38 of PTB-XL's first 120 records, cleaned in 24); atrial fibrillation wherever the RR is irregular (normalised RMSSD
    of all RRs over the engine's own limit, model.beats.IRREGULAR_RMSSD), else the sinus
    rate code by the default limits (SBRAD < 50, STACH > 100/min, SR between); no code
    with fewer than 3 R peaks. No P wave, no premature-beat reasoning: what the engine's
    beat-by-beat analysis adds is the difference between the two columns."""
    import neurokit2 as nk

    fs = ecg.sampling_rate
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clean = nk.ecg_clean(ecg.lead("II").astype(float), sampling_rate=fs)
            _, found = nk.ecg_peaks(clean, sampling_rate=fs)
    except (ValueError, IndexError, ZeroDivisionError):
        return frozenset()
    peaks = np.asarray(found["ECG_R_Peaks"])
    if peaks.size < 3:
        return frozenset()
    rr = np.diff(peaks) / fs
    if np.sqrt(np.mean(np.diff(rr) ** 2)) / rr.mean() > IRREGULAR_RMSSD:
        return frozenset({"AFIB"})
    rate = 60.0 / rr.mean()
    if rate < DEFAULT_LIMITS.bradycardia_bpm:
        return frozenset({"SBRAD"})
    return frozenset({"STACH" if rate > DEFAULT_LIMITS.tachycardia_bpm else "SR"})


# ------------------------------------------------------------ synthetic ----


@dataclass(frozen=True)
class SyntheticResult:
    group: str
    spec: RhythmSpec | PacedSpec
    truth: RhythmTruth
    report: Report
    baseline: frozenset[str]


def run_synthetic_rhythms(seed: int = BENCH_SEED) -> list[SyntheticResult]:
    results = []
    for group, spec in synthetic_rhythm_specs(seed):
        ecg, truth = paced_ecg(spec) if isinstance(spec, PacedSpec) else rhythm_ecg(spec)
        results.append(
            SyntheticResult(group, spec, truth, model.analyze(ecg), baseline_rhythm(ecg))
        )
    return results


def _count(report: Report, code: str) -> int:
    statement = next((s for s in report.statements if s.code == code), None)
    return int(statement.evidence.values.get("count") or 0) if statement else 0


def _distribution(classes: list[str]) -> str:
    return ", ".join(f"{c} {n}" for c, n in Counter(classes).most_common())


def _row(
    part: str,
    quantity: str,
    n: int | str,
    engine: str,
    goal: str = "",
    met: str = "",
    baseline: str = "",
) -> list[str]:
    return [part, quantity, str(n), engine, baseline, goal, met]


def _none_wanted(quantity: str, n: int, count: int, baseline: str = "") -> list[str]:
    """A synthetic row whose goal is a count of none."""
    met = "yes" if count == 0 else "no"
    return _row("Synthetic rhythms", quantity, n, str(count), "0", met, baseline=baseline)


def synthetic_rows(results: list[SyntheticResult]) -> list[list[str]]:
    return (
        group_rows(results)
        + atrial_fibrillation_rows(results)
        + paced_rows([r for r in results if isinstance(r.spec, PacedSpec)])
        + rate_rows(results)
        + statement_rows(results)
    )


def group_rows(results: list[SyntheticResult]) -> list[list[str]]:
    """Per group, the rhythms drawn against the engine's and the baseline's."""
    rows = []
    for group in dict.fromkeys(r.group for r in results):
        members = [r for r in results if r.group == group]
        truth = _distribution([r.truth.rhythm for r in members])
        found = _distribution([rhythm_class(r.report.codes) for r in members])
        simple = _distribution([rhythm_class(r.baseline) for r in members])
        rows.append(
            _row(
                "Synthetic rhythms",
                f"{group}: rhythm drawn → engine",
                len(members),
                f"{truth} → {found}",
                baseline=f"→ {simple}",
            )
        )
    return rows


def atrial_fibrillation_rows(results: list[SyntheticResult]) -> list[list[str]]:
    """False AF on the sinus groups with ectopy and on Mobitz I with PACs (the goal:
    none), and AF recall."""
    rows = []
    for group in (
        "sinus with PACs 5-40 %",
        MIXED_ECTOPY_GROUP,
        FREQUENT_PVC_GROUP,
        MOBITZ_PAC_GROUP,
        SLOW_PAC_PVC_GROUP,
        CONDUCTED_RESET_GROUP,
        NOISY_MOBITZ_GROUP,
    ):
        named = (
            group.replace("sinus", "sinus rhythms", 1) if group.startswith("sinus with") else group
        )
        ectopic = [r for r in results if r.group == group]
        false_af = sum("AFIB" in r.report.codes for r in ectopic)
        baseline = str(sum("AFIB" in r.baseline for r in ectopic))
        rows.append(_none_wanted(f"AFIB called on {named}", len(ectopic), false_af, baseline))
    af = [r for r in results if r.truth.rhythm == "AFIB"]
    recall = sum("AFIB" in r.report.codes for r in af) / len(af)
    rows.append(
        _row(
            "Synthetic rhythms",
            "AFIB recall (f waves 0.02-0.2 mV)",
            len(af),
            f"{recall:.2f}",
            "≥ 0.95",
            "yes" if recall >= 0.95 else "no",
            baseline=f"{sum('AFIB' in r.baseline for r in af) / len(af):.2f}",
        )
    )
    return rows


def rate_rows(results: list[SyntheticResult]) -> list[list[str]]:
    """The sinus rate code named, and the heart rate present on every strip."""
    rows = []
    sinus_truth = [r for r in results if r.truth.rhythm in SINUS]
    rate_right = sum(rhythm_class(r.report.codes) in (r.truth.rhythm, "SARRH") for r in sinus_truth)
    rows.append(
        _row(
            "Synthetic rhythms",
            "sinus rhythms named with the drawn rate code (SARRH also counted right)",
            len(sinus_truth),
            f"{rate_right}",
        )
    )
    no_rate = sum(r.report.measurements.heart_rate_bpm is None for r in results)
    rows.append(_none_wanted("heart rate missing (every one has ≥ 3 beats)", len(results), no_rate))
    return rows


def statement_rows(results: list[SyntheticResult]) -> list[list[str]]:
    """Each rhythm statement against the drawn truth, and the PAC/PVC counts."""
    rows = []
    for code in (
        "PACE",
        "AFIB",
        "AFLT",
        "STACH",
        "SBRAD",
        "PAC",
        "PVC",
        "PJC",
        "BIGU",
        "TRIGU",
        "1AVB",
        "2AVB",
        "3AVB",
    ):
        pairs = [(code in r.report.codes, code in r.truth.codes) for r in results]
        simple = [(code in r.baseline, code in r.truth.codes) for r in results]
        rows.append(
            _row(
                "Synthetic rhythms",
                f"{code} vs drawn truth (all groups)",
                len(results),
                Counts.of(pairs).summary(),
                baseline=Counts.of(simple).summary() if code in BASELINE_CODES else "",
            )
        )
    for code, kind in (("PAC", "A"), ("PVC", "V")):
        sinus = [r for r in results if r.truth.count(kind) and r.spec.rhythm == "sinus"]
        errors = [_count(r.report, code) - r.truth.count(kind) for r in sinus]
        exact = sum(e == 0 for e in errors)
        rows.append(
            _row(
                "Synthetic rhythms",
                f"{code} count, engine − drawn (sinus records with any)",
                len(sinus),
                f"exact {exact}, median |Δ| {np.median(np.abs(errors)):.0f}, mean Δ {np.mean(errors):+.1f}",
            )
        )
    return rows


def paced_rows(paced: list[SyntheticResult]) -> list[list[str]]:
    """PACE recall on the paced group, by stimulus shape, and AFIB called on paced
    rhythms drawn without atrial fibrillation."""
    if not paced:
        return []
    rows = []
    for name, chosen in STIMULUS_SHAPES.items():
        members = [r for r in paced if chosen(r.spec)]
        if members:
            found = sum("PACE" in r.report.codes for r in members)
            rows.append(
                _row(
                    "Synthetic rhythms",
                    f"PACE recall, paced rhythms, {name}",
                    len(members),
                    f"{found / len(members):.2f}",
                )
            )
    rows += atrial_rhythm_rows(paced)
    calm = [r for r in paced if "AFIB" not in r.truth.codes]
    false_af = sum("AFIB" in r.report.codes for r in calm)
    quantity = "AFIB called on paced rhythms drawn without atrial fibrillation"
    rows.append(_none_wanted(quantity, len(calm), false_af))
    return rows


def atrial_rhythm_rows(paced: list[SyntheticResult]) -> list[list[str]]:
    """The atrial rhythm named beside PACE, by the mode drawn, and how many of those
    named the drawing contradicts (docs/measurement.md 3.28)."""
    rows = []
    wrong = 0
    for drawn, allowed in ALLOWED_ATRIAL_RHYTHMS.items():
        members = [r for r in paced if drawn_atrial_rhythm(r.spec) == drawn]
        named = [atrial_rhythm_named(r.report) for r in members]
        wrong += sum(n not in allowed | {"none", "no PACE"} for n in named)
        if members:
            rows.append(
                _row(
                    "Synthetic rhythms",
                    f"paced, {drawn} drawn: atrial rhythm named beside pacing",
                    len(members),
                    _distribution(named),
                )
            )
    quantity = "paced: atrial rhythm named that the drawn mode contradicts"
    rows.append(_none_wanted(quantity, len(paced), wrong))
    return rows


# ---------------------------------------------------------------- PTB-XL ----


def ptbxl_rhythm_rows(records: list[PtbxlRecord]) -> list[list[str]]:
    """records: (ptbxl_database row, truth codes, the engine's report, baseline codes)."""
    rows = []
    by_codes: dict[str, list[str]] = {}
    by_text: dict[str, list[str]] = {}
    text_pairs: dict[str, list[tuple[bool, bool]]] = {c: [] for c in TEXT_SCORED}
    baseline_pairs: dict[str, list[tuple[bool, bool]]] = {c: [] for c in TEXT_SCORED}
    for row, truth, report, simple in records:
        found = rhythm_class(report.codes)
        by_codes.setdefault(rhythm_class(truth), []).append(found)
        named = report_rhythm(row["report"])
        if named is not None:
            by_text.setdefault(named, []).append(found)
            for code, pairs in text_pairs.items():
                pairs.append((code in report.codes, named == code))
                baseline_pairs[code].append((code in simple, named == code))
    for label, table in (("scp_codes", by_codes), ("report text", by_text)):
        for truth in [*RHYTHM_CLASSES, "none"]:
            if truth in table:
                rows.append(
                    _row(
                        "PTB-XL",
                        f"rhythm by {label} {truth} → engine",
                        len(table[truth]),
                        _distribution(table[truth]),
                    )
                )
    for code, pairs in text_pairs.items():
        rows.append(
            _row(
                "PTB-XL",
                f"{code} vs report text (records whose report names a rhythm)",
                len(pairs),
                Counts.of(pairs).summary(),
                baseline=Counts.of(baseline_pairs[code]).summary()
                if code in BASELINE_CODES
                else "",
            )
        )
    return rows


def _value(report: Report, code: str, key: str) -> object:
    statement = next(s for s in report.statements if s.code == code)
    return statement.evidence.values.get(key)


def false_positive_rows(records: list[PtbxlRecord]) -> list[list[str]]:
    """What each 1AVB, LVH and IRBBB false positive rests on (their precision and recall
    are rows of bench/measure_accuracy.py), what each missed 1AVB shows, and the
    borderline first-degree AV blocks (LPR, PR 201-219 ms) by the codes their records
    carry. A 1AVB false positive's P duration tells a long PR from an early P onset: a
    P wave over 120 ms on a record coded NORM is the onset read early, not atrial
    enlargement."""
    borderline = Counter(
        "coded 1AVB" if "1AVB" in truth else "coded LPR" if "LPR" in truth else "neither"
        for _, truth, rep, _ in records
        if "LPR" in rep.codes
    )
    rows = [
        _row(
            "PTB-XL",
            "borderline 1AVB (LPR, PR 201-219 ms) by the record's codes",
            sum(borderline.values()),
            _distribution(list(borderline.elements())) or "none",
        )
    ]
    classes: dict[str, Counter[str]] = {"1AVB": Counter(), "LVH": Counter(), "IRBBB": Counter()}
    missed: Counter[str] = Counter()
    for row, truth, rep, _ in records:
        if "1AVB" in rep.codes and "1AVB" not in truth:
            pr = int(_value(rep, "1AVB", "pr_ms"))
            band = "PR 220-239" if pr < 240 else "PR ≥ 240"
            p = rep.measurements.p_duration_ms
            wide = "P > 120 ms" if p is not None and p > 120 else "P ≤ 120 ms"
            coded = "LPR" if "LPR" in truth else "NORM" if "NORM" in truth else "other"
            classes["1AVB"][f"{band}, {wide}, coded {coded}"] += 1
        if "1AVB" in truth and "1AVB" not in rep.codes:
            pr = rep.measurements.pr_ms
            missed[
                "no PR measured"
                if pr is None
                else "PR 201-219 (borderline)"
                if "LPR" in rep.codes
                else "PR ≤ 200"
            ] += 1
        if "LVH" in rep.codes and "LVH" not in truth:
            criterion = (
                "Sokolow-Lyon" if _value(rep, "LVH", "sokolow_lyon_mv") is not None else "Cornell"
            )
            age = float(row["age"] or 0)
            voltage = "VCLVH coded" if "VCLVH" in truth else "no voltage code"
            classes["LVH"][f"{criterion}, age {'< 40' if age < 40 else '≥ 40'}, {voltage}"] += 1
        if "IRBBB" in rep.codes and "IRBBB" not in truth:
            qrs = int(_value(rep, "IRBBB", "qrs_ms"))
            other = "CRBBB" if "CRBBB" in truth else "NORM" if "NORM" in truth else "other"
            classes["IRBBB"][f"QRS {'100-109' if qrs < 110 else '110-119'}, coded {other}"] += 1
    for code, counter in classes.items():
        rows.append(
            _row(
                "PTB-XL",
                f"{code} false positives by evidence",
                sum(counter.values()),
                _distribution(list(counter.elements())) or "none",
            )
        )
    rows.append(
        _row(
            "PTB-XL",
            "1AVB false negatives by evidence",
            sum(missed.values()),
            _distribution(list(missed.elements())) or "none",
        )
    )
    return rows


# ------------------------------------------------------------- CinC, LUDB ----


def cinc_rows(data: Path) -> list[list[str]]:
    by_rhythm: dict[str, list[str]] = {}
    ectopy: dict[str, list[tuple[bool, bool]]] = {"PAC": [], "PVC": []}
    for header in sorted((data / "cinc2021").glob("*.hea")):
        dx = set(
            next(line for line in header.read_text().splitlines() if line.startswith("# Dx:"))[5:]
            .strip()
            .split(",")
        )
        truth = rhythm_class({CINC_RHYTHMS[c] for c in dx if c in CINC_RHYTHMS})
        report = model.analyze(model.load(header.with_suffix("")))
        by_rhythm.setdefault(truth, []).append(rhythm_class(report.codes))
        ectopy["PAC"].append(("PAC" in report.codes, bool(dx & CINC_PAC)))
        ectopy["PVC"].append(("PVC" in report.codes, bool(dx & CINC_PVC)))
    rows = [
        _row("CinC 2021", f"rhythm by Dx {t} → engine", len(v), _distribution(v))
        for t, v in by_rhythm.items()
    ]
    rows += [
        _row("CinC 2021", f"{code} vs Dx", len(p), Counts.of(p).summary())
        for code, p in ectopy.items()
    ]
    return rows


LUDB_RHYTHMS = {
    "Sinus rhythm": "SR",
    "Sinus bradycardia": "SBRAD",
    "Sinus tachycardia": "STACH",
    "Sinus arrhythmia": "SARRH",
    "Irregular sinus rhythm": "SARRH",
    "Atrial fibrillation": "AFIB",
    "Atrial flutter, typical": "AFLT",
}


def ludb_rows(data: Path, limit: int) -> list[list[str]]:
    """LUDB's rhythm (first line) and extrasystoles; paced records by their pacing column;
    the conduction labels of the unpaced records (bench/ludb_conduction.py)."""
    with (data / "ludb" / "ludb.csv").open(newline="") as f:
        labels = {int(r["ID"]): r for r in csv.DictReader(f)}
    by_rhythm: dict[str, list[str]] = {}
    ectopy: dict[str, list[tuple[bool, bool]]] = {"PAC": [], "PVC": []}
    conduction = []
    for number in range(1, limit + 1):
        label = labels[number]
        ecg: Ecg = model.load(data / "ludb" / "data" / str(number))
        measured = measure(ecg)
        codes = [s.code for s in interpret(measured)]
        if not label["Cardiac pacing"].strip():
            pr, qrs = measured.values.pr_ms, measured.values.qrs_ms
            conduction.append(labelled_record(number, label, codes, pr, qrs))
        rhythm = (
            "PACE"
            if label["Cardiac pacing"].strip()
            else LUDB_RHYTHMS.get(label["Rhythms"].split("\n")[0].strip(), "other")
        )
        by_rhythm.setdefault(rhythm, []).append(rhythm_class(codes))
        extra = label["Extrasystolies"].lower()
        for code, word in (("PAC", "atrial extrasystole"), ("PVC", "ventricular extrasystole")):
            found = code in codes or (code == "PAC" and "PJC" in codes)
            ectopy[code].append((found, word in extra))
    rows = [
        _row("LUDB", f"rhythm by label {t} → engine", len(v), _distribution(v))
        for t, v in by_rhythm.items()
    ]
    rows += [
        _row(
            "LUDB",
            f"{code} (PJC counted as PAC) vs extrasystoles named",
            len(p),
            Counts.of(p).summary(),
        )
        for code, p in ectopy.items()
    ]
    rows += [_row("LUDB", *row) for row in conduction_rows(conduction, data)]
    return rows
