"""Reading the model's text back into the report: statements with their SCP codes, the
impression, and the numbers it states, checked against what was measured.

Statements are found by the English phrases of the SCP-ECG statements (PTB-XL's
descriptions, which the training targets use verbatim, plus the usual synonyms and
abbreviations of clinical reports) and by bracketed codes such as "[AFIB]". A phrase
under a negation in its clause ("no ST elevation") is not a finding; a hedge
("possible", "probable") is kept in the statement's text.

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
from model.scp_statements import STATEMENTS

CONSISTENCY = "consistency"

# Usual names in reports for SCP statements, beyond PTB-XL's own descriptions.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "SR": ("normal sinus rhythm", "sinus rhythm"),
    "AFIB": ("atrial fibrillation",),
    "AFLT": ("atrial flutter",),
    "1AVB": (
        "first degree AV block",
        "1st degree AV block",
        "first degree atrioventricular block",
        "first degree heart block",
    ),
    "2AVB": ("second degree AV block", "2nd degree AV block", "Mobitz", "Wenckebach"),
    "3AVB": (
        "third degree AV block",
        "3rd degree AV block",
        "complete heart block",
        "complete AV block",
    ),
    "CRBBB": ("right bundle branch block", "complete right bundle branch block"),
    "CLBBB": ("left bundle branch block", "complete left bundle branch block"),
    "LAFB": ("left anterior hemiblock",),
    "LPFB": ("left posterior hemiblock",),
    "IVCD": ("intraventricular conduction delay", "intraventricular conduction disturbance"),
    "LAO/LAE": ("left atrial abnormality",),
    "RAO/RAE": ("right atrial abnormality",),
    "WPW": ("Wolff-Parkinson-White", "Wolff-Parkinson-White pattern", "ventricular pre-excitation"),
    "LNGQT": (
        "long QT",
        "prolonged QT",
        "prolonged QT interval",
        "QT prolongation",
        "prolonged QTc",
    ),
    "LPR": ("prolonged PR", "PR prolongation"),
    "PVC": (
        "premature ventricular complexes",
        "premature ventricular contractions",
        "premature ventricular beats",
        "ventricular premature beats",
        "ventricular extrasystoles",
        "ventricular ectopic beats",
    ),
    "PAC": (
        "premature atrial complexes",
        "premature atrial contractions",
        "premature atrial beats",
        "atrial premature beats",
        "supraventricular extrasystoles",
    ),
    "PACE": (
        "pacemaker rhythm",
        "paced rhythm",
        "artificial pacemaker rhythm",
        "ventricular pacing",
    ),
    "LVOLT": ("low QRS voltage", "low QRS voltages", "low voltage QRS", "low voltage"),
    "HVOLT": ("high QRS voltages",),
    "STD_": ("ST depression", "ST segment depression"),
    "STE_": ("ST elevation", "ST segment elevation"),
    "INVT": ("T wave inversion", "inverted T waves", "T wave inversions"),
    "TAB_": ("T wave abnormality", "T wave abnormalities", "abnormal T waves"),
    "NT_": ("non-specific T wave changes", "nonspecific T wave abnormality"),
    "NST_": ("non-specific ST-T changes", "nonspecific ST-T wave changes"),
    "QWAVE": ("Q waves", "pathological Q waves"),
    "LAD": ("left axis deviation", "left axis"),
    "RAD": ("right axis deviation", "right axis"),
    "SVTAC": ("supraventricular tachycardia",),
    "NORM": ("normal ECG", "normal electrocardiogram"),
}
# Abbreviations, matched with their exact capitals ("AF", not "af" inside a word).
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "SR": ("NSR",),
    "AFIB": ("AF", "AFib"),
    "AFLT": ("AFL",),
    "1AVB": ("1AVB", "1° AV block"),
    "CRBBB": ("RBBB", "CRBBB"),
    "CLBBB": ("LBBB", "CLBBB"),
    "IRBBB": ("IRBBB",),
    "ILBBB": ("ILBBB",),
    "LAFB": ("LAFB", "LAHB"),
    "LPFB": ("LPFB", "LPHB"),
    "LVH": ("LVH",),
    "RVH": ("RVH",),
    "WPW": ("WPW",),
    "PVC": ("PVC", "PVCs", "VPB", "VPBs"),
    "PAC": ("PAC", "PACs", "APB", "APBs"),
    "SVTAC": ("SVT",),
    "LAD": ("LAD",),
    "RAD": ("RAD",),
    "IVCD": ("IVCD",),
}
NEGATIONS = re.compile(
    r"\b(?:no|not|without|absent|absence of|negative for|free of|rule out|ruled out|resolved)\b",
    re.IGNORECASE,
)
HEDGES = re.compile(
    r"\b(possible|probable|probably|borderline|suspected|likely|consider|"
    r"cannot (?:be )?(?:exclude|excluded|rule out|ruled out))\b",
    re.IGNORECASE,
)
_HEDGE_WORD = {
    "probably": "probable",
    "likely": "probable",
    "suspected": "possible",
    "consider": "possible",
}
CLAUSE_END = re.compile(r"[.,;:\n!?]")
BRACKETED_CODE = re.compile(r"[\[(]\s*([A-Za-z0-9_/()]{2,8}?)\s*[\])]")
LINE_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z -]{0,20}):\s*")
MEASUREMENTS_LABEL = "measurements"


@dataclass(frozen=True)
class FoundStatement:
    """A statement named in the text: its code, the words that named it, any hedge."""

    code: str
    phrase: str
    hedge: str | None = None

    def statement_text(self) -> str:
        text = STATEMENTS[self.code].description
        text = f"{self.hedge} {text}" if self.hedge else text
        return text[0].upper() + text[1:]


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

    @property
    def codes(self) -> list[str]:
        return [s.code for s in self.statements]


def parse_generated_text(text: str) -> ParsedText:
    return ParsedText(
        statements=find_statements(text), impression=impression(text), values=stated_values(text)
    )


# --- statements ---------------------------------------------------------------------------


def _phrase_pattern(phrase: str) -> str:
    """Words may be joined by spaces or hyphens, or run together ('non-specific', 'T wave')."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    return r"(?<![\w-])" + r"[\s\-]*".join(words) + r"(?![\w-])"


def _description_variants(description: str) -> set[str]:
    """PTB-XL descriptions as people write them: 'a/b' either way, no parenthesis, 'MI'."""
    plain = re.sub(r"\s*\([^)]*\)", "", description).strip()
    spelled = {description, plain}
    spelled |= {option for text in spelled for option in _slash_options(text)}
    spelled |= {
        text.replace("myocardial infarction", other)
        for text in spelled
        if "myocardial infarction" in text
        for other in ("infarction", "infarct", "MI")
    }
    spelled |= {
        "ischemia in " + text.removeprefix("ischemic in ")
        for text in spelled
        if text.startswith("ischemic in ")
    }
    return {v for v in spelled if "/" not in v or v == description}


def _slash_options(text: str) -> list[str]:
    """'left atrial overload/enlargement' -> 'left atrial overload', '... enlargement'."""
    words = text.split()
    return [
        " ".join(words[:i] + [option] + words[i + 1 :])
        for i, word in enumerate(words)
        if "/" in word and len(word) > 3
        for option in word.split("/")
    ]


def _build_patterns() -> list[tuple[str, re.Pattern[str]]]:
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for code, statement in STATEMENTS.items():
        phrases = _description_variants(statement.description) | set(SYNONYMS.get(code, ()))
        for phrase in sorted(phrases):
            patterns.append((code, re.compile(_phrase_pattern(phrase), re.IGNORECASE)))
            if "ischemic" in phrase:
                british = phrase.replace("ischemic", "ischaemic").replace("ischemia", "ischaemia")
                patterns.append((code, re.compile(_phrase_pattern(british), re.IGNORECASE)))
    for code, abbreviations in ABBREVIATIONS.items():
        for abbreviation in abbreviations:
            exact = r"(?<![\w-])" + re.escape(abbreviation) + r"(?![\w-])"
            patterns.append((code, re.compile(exact)))
    return patterns


_PATTERNS = _build_patterns()


def find_statements(text: str) -> list[FoundStatement]:
    """Statements in order of appearance, each code once; the longest phrase wins a span."""
    candidates = [
        (m.start(), m.end(), code) for code, pattern in _PATTERNS for m in pattern.finditer(text)
    ]
    candidates += [
        (m.start(), m.end(), m.group(1).upper())
        for m in BRACKETED_CODE.finditer(text)
        if m.group(1).upper() in STATEMENTS
    ]
    taken: list[tuple[int, int, str]] = []
    for start, end, code in sorted(candidates, key=lambda c: (c[0] - c[1], c[0])):
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, code))
    found: dict[str, FoundStatement] = {}
    for start, end, code in sorted(taken):
        prefix = _clause_prefix(text, start)
        if code in found or _negated(prefix) or _is_qualified_normal(code, prefix):
            continue
        found[code] = FoundStatement(code, text[start:end], _hedge(prefix))
    return list(found.values())


def _clause_prefix(text: str, start: int) -> str:
    """The words before a match, back to the start of its clause."""
    boundaries = [m.end() for m in CLAUSE_END.finditer(text, 0, start)]
    return text[(boundaries[-1] if boundaries else 0) : start]


def _negated(prefix: str) -> bool:
    """'no', 'without'...; a hedge such as 'cannot rule out' is not a negation."""
    return NEGATIONS.search(HEDGES.sub(" ", prefix)) is not None


def _hedge(prefix: str) -> str | None:
    hedges = HEDGES.findall(prefix)
    if not hedges:
        return None
    word = hedges[-1].lower()
    return "possible" if word.startswith("cannot") else _HEDGE_WORD.get(word, word)


def _is_qualified_normal(code: str, prefix: str) -> bool:
    """'Otherwise normal ECG' and 'borderline normal' are not PTB-XL's NORM."""
    qualified = re.search(r"\b(otherwise|borderline)\b", prefix, re.IGNORECASE)
    return code == "NORM" and qualified is not None


# --- impression ---------------------------------------------------------------------------


def impression(text: str) -> str:
    """The text without its Measurements line, one sentence per line, as the report's summary.

    Measurements stay out because the report's structured values are the measured ones;
    the stated numbers are only checked (see stated_values).
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    kept = [_sentence(line) for line in lines if _label(line) != MEASUREMENTS_LABEL]
    return " ".join(kept) if kept else " ".join(_sentence(line) for line in lines)


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
