"""The embedded default engine: measurements and rule statements, no model weights;
and the same engine standing in for a VLM that could not be loaded (FallbackEngine).

analyze(ecg) measures (model.measure), interprets (model.statements) and writes
the impression a cardiologist would: the rhythm first, then each finding, then a
verdict ("Normal ECG." / "Otherwise normal ECG." / "Abnormal ECG.").
"""

from __future__ import annotations

from collections.abc import Sequence

from model.av_block_statements import AV_BLOCK_CODES
from model.ecg import Ecg
from model.measure import P_WAVE_KEYS, EcgMeasurement, measure
from model.paced_statements import NAMED_PACING
from model.report import EngineInfo, Measurements, Report, SourceInfo, Statement
from model.rhythm_statements import undetermined_rhythm
from model.signal_quality import RESCALED_FLAG
from model.statement_limits import DEFAULT_LIMITS, StatementLimits
from model.statements import NORMAL_RHYTHM_CODES, interpret, unexplained_beats
from model.vlm.page_image import PageImage

ENGINE = EngineInfo(name="measure", version="1.0.0")
FALLBACK_FLAG = "engine-fallback"

# Findings a cardiologist still calls "otherwise normal" (borderline, minor).
MINOR_CODES = frozenset({"PAC", "PVC", "PJC", "IRBBB", "LAFB", "LAD", "1AVB", "LPR"})

RHYTHM_PHRASES = {
    "SR": "Sinus rhythm",
    "SBRAD": "Sinus bradycardia",
    "STACH": "Sinus tachycardia",
    "SARRH": "Sinus arrhythmia",
    "AFIB": "Atrial fibrillation",
    "AFLT": "Atrial flutter",
    "PACE": "Pacemaker rhythm",
}
# Rhythms without P waves: what the median beat holds before the QRS there is f or F
# waves, and a P duration, PR or P axis measured on it would contradict the rhythm
# stated (LUDB 52, flutter stated as fibrillation: "PR 260 ms").
NO_P_WAVE_RHYTHMS = {"AFIB": "atrial fibrillation", "AFLT": "atrial flutter"}
ECTOPY_PHRASES = {
    "PVC": "premature ventricular complexes",
    "PAC": "premature atrial complexes",
    "PJC": "premature junctional complexes",
}


def analyze(ecg: Ecg, limits: StatementLimits = DEFAULT_LIMITS) -> Report:
    """Measure and interpret one ECG. Poor signals give nulls with reasons, never an exception."""
    measured = measure(ecg)
    statements = interpret(measured, sex=ecg.metadata.patient_sex, limits=limits)
    values, null_reasons = without_p_wave_in_atrial_arrhythmia(measured, statements)
    return Report(
        measurements=values,
        null_reasons=null_reasons,
        statements=statements,
        impression=impression(statements, measured),
        engine=ENGINE,
        source=SourceInfo(
            kind="ecg-waveform",
            format=ecg.metadata.source_format,
            leads=list(ecg.lead_names),
            sampling_rate_hz=float(ecg.sampling_rate),
            duration_s=round(ecg.duration_s, 3),
            quality_flags=measured.quality_flags,
        ),
        warnings=_warnings(measured),
    )


def without_p_wave_in_atrial_arrhythmia(
    measured: EcgMeasurement, statements: list[Statement]
) -> tuple[Measurements, dict[str, str]]:
    """The measurements to report: with atrial fibrillation or flutter stated, no P
    duration, PR or P axis, each nulled with the rhythm as its reason."""
    rhythm = next(
        (NO_P_WAVE_RHYTHMS[s.code] for s in statements if s.code in NO_P_WAVE_RHYTHMS), None
    )
    if rhythm is None:
        return measured.values, measured.null_reasons
    reason = f"no P wave in {rhythm}"
    nulled = {key: reason for key in P_WAVE_KEYS if getattr(measured.values, key) is not None}
    values = measured.values.model_copy(update=dict.fromkeys(nulled))
    return values, {**measured.null_reasons, **nulled}


def impression(statements: list[Statement], measured: EcgMeasurement) -> str:
    """The statements as a cardiologist writes them, one sentence each, verdict last."""
    if measured.fiducials is None:
        reason = measured.null_reasons.get("qrs_ms", "no analysable signal")
        rate = measured.values.heart_rate_bpm
        heart_rate = "" if rate is None else f" Heart rate {rate}/min."
        return f"Technically inadequate recording ({reason}).{heart_rate} No interpretation."
    codes = [s.code for s in statements]
    blocks = [s.text for s in statements if s.code in AV_BLOCK_CODES]
    paced = [s.text for s in statements if s.code == "PACE" and s.text.startswith(NAMED_PACING)]
    sentences = [_rhythm_sentence(codes, blocks, measured, paced[0] if paced else None)]
    in_rhythm = {*RHYTHM_PHRASES, *ECTOPY_PHRASES, *AV_BLOCK_CODES, "NORM"}
    sentences += [_sentence(s.text) for s in statements if s.code not in in_rhythm]
    sentences.append(_verdict(codes, measured))
    return " ".join(sentences)


def _rhythm_sentence(
    codes: list[str], blocks: list[str], measured: EcgMeasurement, paced: str | None = None
) -> str:
    """ "Sinus rhythm with second degree AV block, Mobitz I (Wenckebach) and premature
    ventricular complexes.": the rhythm, an AV block, then the ectopy; where no rhythm
    was named, why not ("Rhythm undetermined: regular narrow-complex rhythm at
    150/min, no P wave measured (...)")."""
    phrases = RHYTHM_PHRASES if paced is None else {**RHYTHM_PHRASES, "PACE": paced}
    rhythms = [phrases[c] for c in codes if c in RHYTHM_PHRASES] + blocks
    ectopy = [ECTOPY_PHRASES[c] for c in codes if c in ECTOPY_PHRASES]
    if not rhythms:
        text = f"Rhythm undetermined: {undetermined_rhythm(measured)}"
        return text + "".join(f"; {e}" for e in ectopy) + "."
    text = rhythms[0] + "".join(f" with {r[0].lower()}{r[1:]}" for r in rhythms[1:])
    if ectopy:
        text += (" with " if len(rhythms) < 2 else " and ") + " and ".join(ectopy)
    return text + "."


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _verdict(codes: list[str], measured: EcgMeasurement) -> str:
    """Normal only when everything was judged: uncalibrated amplitudes leave the
    voltages unjudged, a signal too noisy for intervals everything but the rhythm, a
    PR not measured a first-degree block or pre-excitation unseen."""
    findings = set(codes) - NORMAL_RHYTHM_CODES - {"NORM"}
    if measured.rhythm_only:
        return f"Intervals, axes and voltages not assessed: {measured.rhythm_only}."
    if not any(c in NORMAL_RHYTHM_CODES for c in codes) or not findings <= MINOR_CODES:
        return "Abnormal ECG."
    if not measured.amplitudes_calibrated:
        return "QRS voltages not assessed: the amplitudes are not calibrated."
    if measured.values.pr_ms is None:
        return "PR interval not assessed: the P wave's onset could not be measured."
    if unexplained := unexplained_beats(measured):
        total = measured.beats.positions.size
        return f"{unexplained} of {total} QRS complexes of another shape, not classified."
    return "Otherwise normal ECG." if findings else "Normal ECG."


def _warnings(measured: EcgMeasurement) -> list[str]:
    skipped = [
        f"lead {name} not used: {why}"
        for name, why in measured.lead_problems.items()
        if why != "missing"
    ]
    if not measured.amplitudes_calibrated:
        skipped.append(RESCALED_FLAG)
    return skipped


class MeasurementEngine:
    """Signal measurement and coded rule statements (model.analyze)."""

    name = "measure"
    reads_pages = False  # a picture has no samples to measure

    def __init__(self, limits: StatementLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def interpret(self, ecg: Ecg) -> Report:
        return analyze(ecg, self.limits)

    def interpret_batch(self, inputs: Sequence[Ecg | PageImage]) -> list[Report | None]:
        """A report per waveform; None per page: a picture has no samples to measure."""
        return [self.interpret(item) if isinstance(item, Ecg) else None for item in inputs]


class FallbackEngine(MeasurementEngine):
    """The measurement engine standing in for a VLM that could not be loaded; every
    report says so, so nobody mistakes it for the configured engine's. The notice goes to
    the EHR with the report; why the model could not be loaded (paths, how to fix it) is
    for the gateway's log."""

    def __init__(self, configured: str, limits: StatementLimits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._notice = (
            f"the configured {configured} engine could not be loaded; "
            "this report is from the measurement engine"
        )

    def interpret(self, ecg: Ecg) -> Report:
        return as_fallback(super().interpret(ecg), [self._notice])


def as_fallback(report: Report, notices: list[str]) -> Report:
    """A report standing in for the configured engine's: flagged `engine-fallback`, with
    the notices that say why among its warnings, so nobody mistakes whose it is."""
    source = report.source.model_copy(
        update={"quality_flags": [*report.source.quality_flags, FALLBACK_FLAG]}
    )
    return report.model_copy(update={"source": source, "warnings": [*report.warnings, *notices]})
