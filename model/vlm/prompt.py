"""What the VLM is asked: the instruction, and in hybrid mode the measured facts.

The answer format asked for is the one training/targets.py teaches (one labelled line
per reading step, then a Measurements line), so a trained adapter answers in the form
model/vlm/parse.py reads. Training builds its prompts with `report_prompt` too: a
model answers best to the very words it was trained on.

Hybrid mode puts the measured values and the measurement engine's statements in front of the
instruction, so the model writes around facts instead of inventing numbers. A received
page, which has no measurements, gets the instruction alone (the vlm prompt) in both modes.
"""

from __future__ import annotations

from collections.abc import Sequence

from model.report import Measurements, Statement

REPORT_INSTRUCTION = (
    "Read this 12-lead ECG and write a preliminary report. Write one line for each "
    "reading step with a finding, in this order: Rhythm, Conduction, Axis, Hypertrophy, "
    "ST-T, Infarction, Interpretation. End with a Measurements line: heart rate, PR, QRS, "
    "QT, QTc (Bazett), P axis, QRS axis, T axis."
)
FACTS_NOTE = "Measured on the signal; quote these values and do not change them:"
RULES_NOTE = "Rule-based statements:"


def report_prompt(
    measurements: Measurements | None = None, rule_statements: Sequence[Statement] | None = None
) -> str:
    """The user turn's text: hybrid facts when given, then the instruction.

    A received page (Secondary Capture, PDF) gets the instruction alone in either mode:
    nothing was measured, and the page shows what it is. Training teaches exactly these
    prompts (training/collate.py), so serving never sends one no stage trained on."""
    parts = []
    if measurements is not None:
        parts.append(f"{FACTS_NOTE} {'; '.join(measurement_phrases(measurements))}.")
    if rule_statements is not None:
        texts = "; ".join(s.text for s in rule_statements) or "none"
        parts.append(f"{RULES_NOTE} {texts}.")
    parts.append(REPORT_INSTRUCTION)
    return "\n".join(parts)


def report_messages(prompt: str) -> list[dict]:
    """One user turn: the page image first, as SmolVLM was trained, then the text."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def measurement_phrases(values: Measurements) -> list[str]:
    """The values as training/targets.py writes them, 'not measurable' where None."""
    return [
        _phrase("heart rate", values.heart_rate_bpm, " bpm"),
        _phrase("PR", values.pr_ms, " ms"),
        _phrase("QRS", values.qrs_ms, " ms"),
        _phrase("QT", values.qt_ms, " ms"),
        _phrase("QTc (Bazett)", values.qtc_bazett_ms, " ms"),
        _phrase("P axis", values.p_axis_deg, "°"),
        _phrase("QRS axis", values.qrs_axis_deg, "°"),
        _phrase("T axis", values.t_axis_deg, "°"),
    ]


def _phrase(name: str, value: float | None, unit: str) -> str:
    return f"{name} not measurable" if value is None else f"{name} {round(value)}{unit}"
