"""Reading the model's text back into the report: statements with their SCP codes, the
impression, and the numbers it states, checked against what was measured.

Statements, negated and hedged findings: model/vlm/findings.py. The impression keeps
only the lines that name a finding (or an axis or verdict), so words the parser does not
understand never become a report's interpretation.

Numbers the text states are never copied into the structured fields: the measured
values always win. A stated number that differs from the measured one by more than a
reading tolerance, a number for a value that could not be measured, and a statement
whose defining threshold the measurements contradict ("sinus tachycardia" at 70 bpm)
each become a consistency warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from model.report import Measurements, Statement
from model.vlm.findings import FoundStatement, find_mentions, find_statements

CONSISTENCY = "consistency"

LINE_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z -]{0,20}):\s*")
MEASUREMENTS_LABEL = "measurements"


@dataclass(frozen=True)
class StatedValue:
    """A number the text gives for a measurement; `key` None means 'QTc', formula unsaid."""

    key: str | None
    value: float
    phrase: str


@dataclass(frozen=True)
class ParsedText:
    statements: list[FoundStatement]
    impression: str
    values: list[StatedValue] = field(default_factory=list)
    unread_lines: list[str] = field(default_factory=list)  # left out of the impression

    @property
    def codes(self) -> list[str]:
        return [s.code for s in self.statements]

    @property
    def readable(self) -> bool:
        """The text names at least one ECG statement the parser knows: only then may it
        be a report's interpretation (model/vlm/report.py falls back or holds otherwise)."""
        return bool(self.statements)


def parse_generated_text(text: str) -> ParsedText:
    kept, unread = read_lines(text)
    return ParsedText(
        statements=find_statements(text),
        impression=" ".join(_sentence(line) for line in kept),
        values=stated_values(text),
        unread_lines=unread,
    )


# --- impression ---------------------------------------------------------------------------


# Lines without a statement that a report may still carry: the axis and the verdict.
KNOWN_LINE_PHRASES = re.compile(
    r"\b(?:(?:normal|vertical|horizontal|sagittal|indeterminate) axis|"
    r"(?:abnormal|borderline|otherwise normal|pathological) ECG|not stated|"
    r"pathologisches EKG|lagetyp normal)\b",
    re.IGNORECASE,
)
MISDECODED = "\ufffd"  # bytes the tokenizer could not decode: never a report's words


def impression(text: str) -> str:
    """The lines of the text a report may carry, one sentence per line (see read_lines)."""
    return " ".join(_sentence(line) for line in read_lines(text)[0])


def read_lines(text: str) -> tuple[list[str], list[str]]:
    """(lines the impression keeps, lines it leaves out).

    Kept: a line that names an ECG statement (even a negated one) or an axis or verdict
    phrase. Left out: the Measurements line (the report's values are the measured ones,
    the stated numbers are only checked, see stated_values) and every other line, so
    words the parser does not understand never become the interpretation.
    """
    kept, unread = [], []
    for line in statement_part(text):
        understood = find_mentions(line) or KNOWN_LINE_PHRASES.search(line)
        (kept if understood and MISDECODED not in line else unread).append(line)
    return kept, unread


def statement_part(text: str) -> list[str]:
    """The text's non-empty lines without its Measurements line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return [line for line in lines if _label(line) != MEASUREMENTS_LABEL]


def split_label(line: str) -> tuple[str, str]:
    """("Conduction: ", "first degree AV block.") for a labelled line; ("", line) else."""
    match = LINE_LABEL.match(line)
    return (match.group(0), line[match.end() :]) if match else ("", line)


def _label(line: str) -> str | None:
    match = LINE_LABEL.match(line)
    return match.group(1).strip().lower() if match else None


def _sentence(line: str) -> str:
    return line if line.endswith((".", "!", "?")) else line + "."


# --- numbers ------------------------------------------------------------------------------

_NUMBER = r"([+\-−]?\d{1,3}(?:\.\d+)?)"
_LINK = r"\s*(?:of|is|was|at|:|=)?\s*"
VALUE_PATTERNS: tuple[tuple[str | None, re.Pattern[str]], ...] = (
    (
        "heart_rate_bpm",
        re.compile(
            r"\b(?:heart rate|ventricular rate|rate|HR)"
            + _LINK
            + _NUMBER
            + r"\s*(?:bpm|/\s*min|beats)",
            re.IGNORECASE,
        ),
    ),
    ("pr_ms", re.compile(r"\bPR(?:\s+interval)?" + _LINK + _NUMBER + r"\s*ms\b", re.IGNORECASE)),
    (
        "qrs_ms",
        re.compile(
            r"\bQRS(?:\s+(?:duration|width|interval))?" + _LINK + _NUMBER + r"\s*ms\b",
            re.IGNORECASE,
        ),
    ),
    ("qt_ms", re.compile(r"\bQT(?![cC/])(?:\s+interval)?" + _LINK + _NUMBER + r"\s*ms\b")),
    (
        "qtc_bazett_ms",
        re.compile(
            r"\bQTc?\s*(?:\(\s*Bazett\s*\)|B\b|Bazett)" + _LINK + _NUMBER + r"\s*ms\b",
            re.IGNORECASE,
        ),
    ),
    (
        "qtc_fridericia_ms",
        re.compile(
            r"\bQTc?\s*(?:\(\s*Fridericia\s*\)|F\b|Fridericia)" + _LINK + _NUMBER + r"\s*ms\b",
            re.IGNORECASE,
        ),
    ),
    (
        None,
        re.compile(
            r"\bQTc(?!\s*\(|\s*[BF]\b|\s*Bazett|\s*Fridericia)" + _LINK + _NUMBER + r"\s*ms\b"
        ),
    ),
    ("p_axis_deg", re.compile(r"\bP[\s\-]+axis" + _LINK + _NUMBER, re.IGNORECASE)),
    ("t_axis_deg", re.compile(r"\bT[\s\-]+axis" + _LINK + _NUMBER, re.IGNORECASE)),
    (
        "qrs_axis_deg",
        re.compile(r"(?:\bQRS[\s\-]+|(?<![PT][\s-])(?<!\w))axis" + _LINK + _NUMBER, re.IGNORECASE),
    ),
)
# "QT/QTc 400/430 ms", as carts print it.
QT_QTC_PAIR = re.compile(r"\bQT\s*/\s*QTc\s*:?\s*(\d{3})\s*/\s*(\d{3})\s*ms\b", re.IGNORECASE)


def stated_values(text: str) -> list[StatedValue]:
    values = []
    for key, pattern in VALUE_PATTERNS:
        for match in pattern.finditer(text):
            values.append(StatedValue(key, _number(match.group(1)), match.group(0).strip()))
    for match in QT_QTC_PAIR.finditer(text):
        values.append(StatedValue("qt_ms", float(match.group(1)), match.group(0)))
        values.append(StatedValue(None, float(match.group(2)), match.group(0)))
    return values


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


# --- consistency with the measurements -----------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    label: str
    unit: str
    tolerance: Callable[[float], float]


# How far a stated value may be from the measured one before it is a contradiction:
# about what two careful readers of the same tracing differ by.
QUANTITIES: dict[str, Quantity] = {
    "heart_rate_bpm": Quantity("heart rate", "bpm", lambda v: max(5.0, 0.1 * v)),
    "pr_ms": Quantity("PR", "ms", lambda v: 20.0),
    "qrs_ms": Quantity("QRS", "ms", lambda v: 20.0),
    "qt_ms": Quantity("QT", "ms", lambda v: 30.0),
    "qtc_bazett_ms": Quantity("QTc (Bazett)", "ms", lambda v: 30.0),
    "qtc_fridericia_ms": Quantity("QTc (Fridericia)", "ms", lambda v: 30.0),
    "p_axis_deg": Quantity("P axis", "°", lambda v: 30.0),
    "qrs_axis_deg": Quantity("QRS axis", "°", lambda v: 30.0),
    "t_axis_deg": Quantity("T axis", "°", lambda v: 30.0),
}
QTC_KEYS = ("qtc_bazett_ms", "qtc_fridericia_ms")


def value_warnings(
    values: Iterable[StatedValue], measured: Measurements, null_reasons: dict[str, str]
) -> list[str]:
    """A warning for each stated number the measurements contradict or cannot confirm."""
    warnings: list[str] = []
    for stated in values:
        keys = [stated.key] if stated.key else list(QTC_KEYS)
        measured_values = {k: getattr(measured, k) for k in keys}
        known = {k: v for k, v in measured_values.items() if v is not None}
        quantity = QUANTITIES[keys[0]] if stated.key else Quantity("QTc", "ms", lambda v: 30.0)
        said = f"{quantity.label} {_fmt(stated.value)}{_space(quantity.unit)}{quantity.unit}"
        if not known:
            reason = null_reasons.get(keys[0], "not measurable")
            warning = (
                f"{CONSISTENCY}: the text gives {said} but it was not measured "
                f"({reason}); the report leaves it empty"
            )
        elif all(abs(stated.value - v) > QUANTITIES[k].tolerance(v) for k, v in known.items()):
            key, value = next(iter(known.items()))
            warning = (
                f"{CONSISTENCY}: the text gives {said} but {QUANTITIES[key].label} was "
                f"measured at {_fmt(value)}{_space(quantity.unit)}{quantity.unit}; "
                "the report keeps the measured value"
            )
        else:
            continue
        if warning not in warnings:
            warnings.append(warning)
    return warnings


@dataclass(frozen=True)
class Threshold:
    """A statement that is only true on one side of a measured value."""

    key: str
    holds: Callable[[float], bool]
    condition: str


# The defining limits (see model/statements.py), widened by the reading tolerance above,
# so only a clear contradiction is reported.
STATEMENT_THRESHOLDS: dict[str, Threshold] = {
    "SBRAD": Threshold("heart_rate_bpm", lambda v: v < 65, "below 60 bpm"),
    "STACH": Threshold("heart_rate_bpm", lambda v: v > 95, "above 100 bpm"),
    "1AVB": Threshold("pr_ms", lambda v: v > 180, "PR above 200 ms"),
    "LPR": Threshold("pr_ms", lambda v: v > 180, "PR above 200 ms"),
    "CLBBB": Threshold("qrs_ms", lambda v: v >= 100, "QRS of 120 ms or more"),
    "CRBBB": Threshold("qrs_ms", lambda v: v >= 100, "QRS of 120 ms or more"),
    "LNGQT": Threshold("qtc_bazett_ms", lambda v: v > 420, "QTc above 450 ms"),
    "LAD": Threshold("qrs_axis_deg", lambda v: v < 0, "QRS axis below -30°"),
    "RAD": Threshold("qrs_axis_deg", lambda v: v > 60, "QRS axis above 90°"),
}


def statement_warnings(found: Iterable[FoundStatement], measured: Measurements) -> list[str]:
    warnings = []
    for statement in found:
        threshold = STATEMENT_THRESHOLDS.get(statement.code)
        value = getattr(measured, threshold.key) if threshold else None
        if threshold is None or value is None or threshold.holds(value) or statement.hedge:
            continue
        quantity = QUANTITIES[threshold.key]
        warnings.append(
            f"{CONSISTENCY}: the text states {statement.statement_text().lower()!r} "
            f"({threshold.condition}) but {quantity.label} was measured at "
            f"{_fmt(value)}{_space(quantity.unit)}{quantity.unit}"
        )
    return warnings


def omitted_rule_warnings(
    found: Iterable[FoundStatement], rule_statements: Sequence[Statement]
) -> list[str]:
    """Hybrid mode: rule statements the model was given but left out of its text."""
    codes = {s.code for s in found}
    return [
        f"{CONSISTENCY}: the text leaves out the rule statement {s.text!r} ({s.code})"
        for s in rule_statements
        if s.code not in codes
    ]


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() or abs(value) >= 10 else f"{value:g}"


def _space(unit: str) -> str:
    return "" if unit == "°" else " "
