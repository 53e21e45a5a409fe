"""Report texts the model learns to write: PTB-XL's SCP codes and our measurements in English.

The statement part follows the order in which cardiologists read an ECG: rhythm,
conduction, axis, hypertrophy, ST-T, infarction, then the overall verdict. Each SCP
code is put in one group from the columns of PTB-XL's `scp_statements.csv`, first
rule that applies:

| rule (columns of scp_statements.csv)                          | group        | codes in PTB-XL |
|---------------------------------------------------------------|--------------|-----------------|
| diagnostic_class MI                                            | infarction   | IMI, ASMI, INJAS, ... |
| diagnostic_class CD                                            | conduction   | LAFB, CRBBB, 1AVB, WPW, ... |
| diagnostic_class HYP                                           | hypertrophy  | LVH, RVH, LAO/LAE, SEHYP, ... |
| diagnostic_class STTC                                          | st-t         | NDT, NST_, ISC_, DIG, LNGQT, ... |
| diagnostic_class NORM                                          | overall      | NORM |
| rhythm = 1                                                     | rhythm       | SR, AFIB, STACH, PACE, BIGU, ... |
| Statement Category mentions "ectopic"                          | rhythm       | PVC, PAC, PRC(S) |
| Statement Category mentions "impulse formation" (not rhythm)   | conduction   | LPR (prolonged PR: AV conduction) |
| Statement Category mentions "ST-T"                             | st-t         | STD_, STE_, NT_, TAB_, LOWT, INVT |
| Statement Category mentions "hypertrophy"                      | hypertrophy  | VCLVH |
| description mentions "voltage"                                 | hypertrophy  | LVOLT, HVOLT (QRS voltage is read with hypertrophy) |
| Statement Category "QRS morphology" or "normal/abnormal"       | infarction   | QWAVE, ABQRS (Q waves and abnormal QRS are read as infarct signs) |

"normal ECG" (NORM) belongs to none of the six reading steps: it is the verdict on
all of them, so it closes the statement part as "Interpretation". The axis comes from
PTB-XL's `heart_axis` column, not from a code. A code no rule places is an error that
names it, so a changed statements file cannot silently lose statements.

The measured values close the report in the words of model/vlm/prompt.py, which also
puts them in the hybrid prompt, and model/vlm/parse.py reads this format back: one
writer for the format on the serving side, so prompt, target and parser agree.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from model.report import Measurements
from model.vlm.prompt import measurement_phrases

GROUP_ORDER: tuple[str, ...] = (
    "rhythm",
    "conduction",
    "axis",
    "hypertrophy",
    "st-t",
    "infarction",
    "overall",
)
GROUP_LABELS: dict[str, str] = {
    "rhythm": "Rhythm",
    "conduction": "Conduction",
    "axis": "Axis",
    "hypertrophy": "Hypertrophy",
    "st-t": "ST-T",
    "infarction": "Infarction",
    "overall": "Interpretation",
}
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
_CLASS_GROUPS = {
    "MI": "infarction",
    "CD": "conduction",
    "HYP": "hypertrophy",
    "STTC": "st-t",
    "NORM": "overall",
}

# PTB-XL's heart_axis codes, read off the (German and English) reports that carry
# them: "lagetyp normal" -> MID, "linkstyp" -> LAD, "ueberdrehter linkstyp" -> ALAD,
# "borderline left axis deviation" -> AXL, "steillage" -> AXR.
HEART_AXIS_TEXT: dict[str, str] = {
    "MID": "normal axis",
    "LAD": "left axis deviation",
    "ALAD": "marked left axis deviation",
    "AXL": "borderline left axis deviation",
    "RAD": "right axis deviation",
    "ARAD": "marked right axis deviation",
    "AXR": "vertical axis",
    "SAG": "sagittal axis",
}

# Likelihoods in scp_codes are percentages; 0 means "not given", not "absent".
PROBABLE_FROM = 50.0
CERTAIN_FROM = 80.0


@dataclass(frozen=True)
class ScpStatement:
    """One row of scp_statements.csv, as the targets and the class balance need it."""

    code: str
    description: str
    group: str
    superclass: str | None
    is_rhythm: bool
    order: int


def load_scp_statements(path: Path) -> dict[str, ScpStatement]:
    """code -> statement; errors name the file and the row that could not be placed."""
    try:
        table = pd.read_csv(path, index_col=0)
    except (OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: cannot read SCP statements table: {exc}") from exc
    missing = {"description", "diagnostic_class", "rhythm", "Statement Category"} - set(table)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    statements = {}
    for order, (code, row) in enumerate(table.iterrows()):
        statements[str(code)] = ScpStatement(
            code=str(code),
            description=str(row["description"]).strip(),
            group=_statement_group(path, str(code), row),
            superclass=_text_or_none(row["diagnostic_class"]),
            is_rhythm=_flag(row["rhythm"]),
            order=order,
        )
    return statements


def _statement_group(path: Path, code: str, row: pd.Series) -> str:
    """The reading step a statement belongs to; see the module docstring for the rules."""
    diagnostic_class = _text_or_none(row["diagnostic_class"])
    if diagnostic_class in _CLASS_GROUPS:
        return _CLASS_GROUPS[diagnostic_class]
    if _flag(row["rhythm"]):
        return "rhythm"
    category = str(row["Statement Category"]).lower()
    description = str(row["description"]).lower()
    if "ectopic" in category:
        return "rhythm"
    if "impulse formation" in category:
        return "conduction"
    if "st-t" in category:
        return "st-t"
    if "hypertrophy" in category or "voltage" in description:
        return "hypertrophy"
    if "qrs morphology" in category or "normal/abnormal" in category:
        return "infarction"
    raise ValueError(f"{path}: statement {code!r} ({category!r}) fits no report group")


def _text_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value).strip() or None


def _flag(value: object) -> bool:
    return _text_or_none(value) is not None and float(value) == 1.0


def parse_scp_codes(text: str) -> dict[str, float]:
    """PTB-XL stores scp_codes as a Python dict literal; literal_eval never runs code."""
    try:
        codes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        codes = None
    if not isinstance(codes, dict):
        raise ValueError(f"scp_codes is not a dict literal: {text[:80]!r}")  # noqa: TRY004
    return {str(code): float(likelihood) for code, likelihood in codes.items()}


def statement_phrase(statement: ScpStatement, likelihood: float) -> str:
    """The description, qualified the way the source report hedged it."""
    if 0.0 < likelihood < PROBABLE_FROM:
        return f"possible {statement.description}"
    if PROBABLE_FROM <= likelihood < CERTAIN_FROM:
        return f"probable {statement.description}"
    return statement.description


def statement_groups(
    scp_codes: dict[str, float],
    heart_axis: str | None,
    statements: dict[str, ScpStatement],
) -> dict[str, list[str]]:
    """group -> phrases in reading order; codes unknown to the table are an error."""
    unknown = sorted(set(scp_codes) - set(statements))
    if unknown:
        raise ValueError(f"SCP codes not in scp_statements.csv: {unknown}")
    ordered = sorted(scp_codes, key=lambda c: (not statements[c].is_rhythm, statements[c].order))
    groups: dict[str, list[str]] = {group: [] for group in GROUP_ORDER}
    for code in ordered:
        groups[statements[code].group].append(statement_phrase(statements[code], scp_codes[code]))
    if heart_axis:
        groups["axis"].append(axis_phrase(heart_axis))
    return {group: phrases for group, phrases in groups.items() if phrases}


def axis_phrase(heart_axis: str) -> str:
    try:
        return HEART_AXIS_TEXT[heart_axis]
    except KeyError:
        raise ValueError(
            f"heart_axis {heart_axis!r} is not one of {sorted(HEART_AXIS_TEXT)}"
        ) from None


def report_target(
    scp_codes: dict[str, float],
    heart_axis: str | None,
    measured: Measurements,
    statements: dict[str, ScpStatement],
) -> str:
    """Stage 2 target: one labelled line per reading step, then the measured values."""
    lines = statement_lines(scp_codes, heart_axis, statements)
    lines.append(f"Measurements: {'; '.join(measurement_phrases(measured))}.")
    return "\n".join(lines)


def statement_lines(
    scp_codes: dict[str, float], heart_axis: str | None, statements: dict[str, ScpStatement]
) -> list[str]:
    """The target's statement part: one "Label: phrase; phrase." line per reading step."""
    groups = statement_groups(scp_codes, heart_axis, statements)
    return [f"{GROUP_LABELS[group]}: {'; '.join(phrases)}." for group, phrases in groups.items()]


def codes_as_target(codes: list[str], statements: dict[str, ScpStatement]) -> list[str]:
    """Another system's statement codes (the measurement engine's) written as the target's
    statement lines, so that every system is scored in the same format. Its axis codes
    (LAD, RAD; PTB-XL keeps the axis in heart_axis) become the axis phrase."""
    axis = next((code for code in codes if code in HEART_AXIS_TEXT), None)
    known = {code: 100.0 for code in codes if code in statements}
    return statement_lines(known, axis, statements)


def alignment_target(
    scp_codes: dict[str, float],
    heart_axis: str | None,
    measured: Measurements,
    statements: dict[str, ScpStatement],
) -> str:
    """Stage 1 target: only what can be read off the trace - rhythm, rate, intervals, axis."""
    rhythm = [
        statement_phrase(statements[code], scp_codes[code])
        for code in sorted(scp_codes, key=lambda c: statements[c].order)
        if code in statements and statements[code].is_rhythm
    ]
    phrases = measurement_phrases(measured)
    parts = [f"Rhythm: {'; '.join(rhythm)}." if rhythm else "Rhythm: not stated."]
    rate_and_intervals = "; ".join(phrases[:5])
    parts.append(f"{rate_and_intervals[0].upper()}{rate_and_intervals[1:]}.")
    axis = [phrases[6]] + ([axis_phrase(heart_axis)] if heart_axis else [])
    parts.append(f"Axis: {'; '.join(axis)}.")
    return " ".join(parts)
