"""Atrial flutter statements, with the criterion each rests on: regular atrial waves
left once the QRS-T complexes are cancelled, one atrial wave repeating k times per RR at
fixed conduction (model.measure.conducted_flutter), or every RR a whole number of
cycles of one atrial rate at variable conduction (model.measure.atrial).
model.rhythm_statements decides when flutter is named; this module words it.
"""

from __future__ import annotations

from model.beats import IRREGULAR_RMSSD
from model.measure import (
    DRIFT_BETWEEN_RRS,
    DRIFT_PEAK_LEADS,
    FLUTTER_HZ,
    FLUTTER_MIN_MV,
    ORGANISED_SHARE,
    RR_PEAK_LEADS,
    EcgMeasurement,
)
from model.report import Statement
from model.statement_text import make_statement


def flutter_statement(m: EcgMeasurement) -> Statement:
    """AFLT with the criterion met: waves left once the QRS-T complexes are cancelled,
    or, at fixed conduction, one atrial wave repeating k times per RR. Where the RR is
    irregular the conduction is variable, and the statement says so: an irregular
    rhythm is not fibrillation where regular flutter waves drive it."""
    band = f"{FLUTTER_HZ[0] * 60:.0f}-{FLUTTER_HZ[1] * 60:.0f}/min"
    regular = (
        f"in each lead >= {ORGANISED_SHARE:.0%} of the 2-15 Hz power at one frequency and its "
        "second harmonic, or every RR a whole number of its cycles"
        if m.flutter_organised and m.atrial_residual_mv < FLUTTER_MIN_MV
        else f">= {FLUTTER_MIN_MV} mV RMS"
    )
    criterion = (
        f"regular atrial waves at {band} in II, III, aVF and V1 once the QRS-T complexes "
        f"are cancelled ({regular})"
    )
    if m.flutter_by_rr:
        criterion = (
            f"every RR a whole number of cycles of one atrial rate at {band}, the residual "
            f"left once the QRS-T complexes are cancelled peaking at that rate in at least "
            f"{RR_PEAK_LEADS} of II, III, aVF and V1"
        )
    irregularity = m.beats.irregularity()
    text = conduction = None
    if m.flutter_ratio is None and irregularity is not None and irregularity > IRREGULAR_RMSSD:
        text, conduction = "Atrial flutter with variable conduction", "variable"
        criterion += f"; irregular RR (normalised RMSSD > {IRREGULAR_RMSSD}): variable conduction"
    if m.flutter_ratio is not None:
        criterion = (
            f"the atrial wave before each QRS repeats {m.flutter_ratio} times per RR at "
            f"{band}, inside the ST-T complex once the T wave's direction is removed "
            f"({m.flutter_ratio}:1 conduction)"
        )
        if m.flutter_fused_qrs:
            qrs = "" if m.values.qrs_ms is None else f" ({m.values.qrs_ms} ms)"
            criterion += (
                f"; found taking the QRS as narrower than measured{qrs}: a flutter wave "
                f"fuses with its end, and the width measured includes it"
            )
    return make_statement(
        "AFLT",
        criterion,
        text=text,
        atrial_rate_per_min=round(m.flutter_hz * 60),
        atrial_wave_rms_mv=m.atrial_residual_mv,
        ventricular_rate_bpm=m.values.heart_rate_bpm,
        conduction_ratio=m.flutter_ratio,
        conduction=conduction,
    )


def drifting_flutter_statement(m: EcgMeasurement) -> Statement:
    """AFLT instead of AFIB where the irregular RR is flutter's at variable conduction
    with a drifting cycle (model.measure.atrial.drifting_flutter_hz)."""
    return make_statement(
        "AFLT",
        f"every RR a whole number of cycles of one atrial rate at {FLUTTER_HZ[0] * 60:.0f}-"
        f"{FLUTTER_HZ[1] * 60:.0f}/min, the cycle each RR holds changing by at most "
        f"{DRIFT_BETWEEN_RRS:.0%} from one RR to the next, the residual left once the QRS-T "
        f"complexes are cancelled peaking at that rate in at least {DRIFT_PEAK_LEADS} of II, "
        "III, aVF and V1; irregular RR: variable conduction, not fibrillation",
        text="Atrial flutter with variable conduction",
        atrial_rate_per_min=round(m.drifting_flutter_hz * 60),
        ventricular_rate_bpm=m.values.heart_rate_bpm,
        conduction="variable",
    )
