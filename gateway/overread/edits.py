"""A physician's edit of a report (statements, impression, corrected measurements),
checked and applied to the version the physician saw.

Every statement must be a known SCP-ECG code (gateway/overread/catalogue.py): the EHR
codes what it receives, so free text never stands in for a coded finding. Text is
plain and bounded; a measurement correction must be a finite number in the range the
quantity can have, or None for "not reliably measurable".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.overread.catalogue import catalogue_entry
from gateway.overread.errors import InvalidEdit
from model.report import MEASUREMENT_KEYS, Report, Statement

MAX_STATEMENTS = 40
MAX_STATEMENT_TEXT = 200
MAX_IMPRESSION = 2000
# What a corrected measurement may be: wider than any real ECG, narrow enough to catch
# a slip of the keyboard (a QRS of 1100 ms, a rate of 7000/min).
_LIMITS: dict[str, tuple[float, float]] = {
    "heart_rate_bpm": (10, 350),
    "rr_ms": (150, 6000),
    "p_duration_ms": (0, 300),
    "pr_ms": (0, 600),
    "qrs_ms": (20, 300),
    "qt_ms": (100, 800),
    "qtc_bazett_ms": (100, 800),
    "qtc_fridericia_ms": (100, 800),
    "p_axis_deg": (-180, 360),
    "qrs_axis_deg": (-180, 360),
    "t_axis_deg": (-180, 360),
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
REMOVED_BY_PHYSICIAN = "removed by the over-reading physician"


@dataclass(frozen=True)
class StatementEdit:
    """One coded statement as the physician wants it; "" text: the catalogue's wording."""

    code: str
    text: str = ""


@dataclass(frozen=True)
class ReportEdit:
    """The report as the physician edited it: the full list of statements (added,
    removed, reworded), the impression, and the measurements corrected (key -> value,
    None = not reliably measurable); measurements not named stay as they were."""

    statements: list[StatementEdit]
    impression: str
    measurements: dict[str, float | None] = field(default_factory=dict)


def apply_edit(report: Report, edit: ReportEdit | None) -> Report:
    """`report` with `edit` applied (unchanged for None); raises InvalidEdit naming the
    field. Statements kept from `report` keep their evidence; added ones have none."""
    if edit is None:
        return report
    statements = _statements(report, edit.statements)
    impression = _text("impression", edit.impression, MAX_IMPRESSION, newlines=True)
    measurements = report.measurements.model_copy(deep=True)
    null_reasons = dict(report.null_reasons)
    for key, value in edit.measurements.items():
        checked = _measurement(key, value)
        setattr(measurements, key, checked)
        if checked is None:
            null_reasons[key] = REMOVED_BY_PHYSICIAN
        else:
            null_reasons.pop(key, None)
    return report.model_copy(
        update={
            "statements": statements,
            "impression": impression,
            "measurements": measurements,
            "null_reasons": null_reasons,
        }
    )


def content(report: Report) -> dict[str, Any]:
    """What a physician can change, as the change history keeps it (no patient data)."""
    return {
        "status": report.status,
        "version": report.version,
        "statements": [[s.code, s.text] for s in report.statements],
        "impression": report.impression,
        "measurements": report.measurements.model_dump(),
    }


def same_content(a: Report, b: Report) -> bool:
    """Whether two versions say the same (status and version aside)."""
    skip = ("status", "version")
    return {k: v for k, v in content(a).items() if k not in skip} == {
        k: v for k, v in content(b).items() if k not in skip
    }


def _statements(report: Report, edits: list[StatementEdit]) -> list[Statement]:
    if len(edits) > MAX_STATEMENTS:
        raise InvalidEdit("statements", f"{len(edits)} statements, at most {MAX_STATEMENTS}")
    kept = {s.code: s for s in report.statements}
    seen: set[str] = set()
    statements = []
    for index, edit in enumerate(edits, 1):
        where = f"statement {index}"
        code = edit.code.strip()
        entry = catalogue_entry(code)
        if entry is None:
            raise InvalidEdit(where, f"{code[:20]!r} is not an SCP-ECG statement code")
        if code in seen:
            raise InvalidEdit(where, f"{code} is listed twice")
        seen.add(code)
        text = _text(where, edit.text, MAX_STATEMENT_TEXT, newlines=False) or entry.text
        evidence = kept[code].evidence if code in kept else None
        statements.append(Statement(code=code, text=text, snomed=entry.snomed, evidence=evidence))
    return statements


def control_character(text: str) -> str | None:
    """The first control character in `text` (tab and line feed allowed), or None: the
    EHR's formats cannot carry them and PostgreSQL cannot store a NUL."""
    found = _CONTROL.search(text)
    return found.group(0) if found else None


def _text(where: str, text: str, limit: int, *, newlines: bool) -> str:
    text = text.replace("\r\n", "\n").strip()
    if control_character(text) or (not newlines and "\n" in text):
        raise InvalidEdit(where, "contains control characters or line breaks")
    if len(text) > limit:
        raise InvalidEdit(where, f"{len(text)} characters, at most {limit}")
    return text


def _measurement(key: str, value: float | None) -> float | None:
    if key not in MEASUREMENT_KEYS:
        raise InvalidEdit(f"measurement {key[:30]!r}", "not a measurement of the report")
    if value is None:
        return None
    low, high = _LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEdit(f"measurement {key}", "not a number")
    if not low <= value <= high:
        raise InvalidEdit(f"measurement {key}", f"{value:g} is outside {low:g}..{high:g}")
    return float(value)
