"""The report form as the physician submitted it, read into what changed: statements kept
(with their text as edited), removed and added, the impression, corrected measurements.

Form fields (templates/report.html): code_<i>, text_<i>, remove_<i> per statement shown,
`add` (repeated: "CODE — text" from the catalogue's datalist, a bare code, or words), impression,
m_<key> per measurement, base_version. Every problem names the field it is in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from starlette.datastructures import FormData

from gateway.overread import statement_catalogue
from gateway.overread.catalogue import catalogue_entry
from gateway.web.context import control_problem
from model.report import MEASUREMENT_KEYS, Report

MAX_TEXT = 500
_SEPARATOR = " — "


class FormProblem(ValueError):
    """A field the physician must correct; the message names it."""


@dataclass(frozen=True)
class SubmittedReading:
    statements: list[tuple[str, str]]  # (code, text) in order, additions last
    impression: str
    measurements: dict[str, float | None] = field(default_factory=dict)  # the changed ones only
    base_version: int = 0

    def changes(self, report: Report) -> bool:
        """Whether anything differs from `report` (no change: confirmed as it stands)."""
        shown = [(s.code, s.text) for s in report.statements]
        return (
            self.statements != shown
            or self.impression != report.impression
            or bool(self.measurements)
        )


def read_reading(form: FormData, report: Report) -> SubmittedReading:
    """The submitted reading; FormProblem naming the field when one cannot be taken."""
    for name, value in form.multi_items():
        problem = control_problem(_field_label(name), str(value))
        if problem is not None:
            raise FormProblem(problem)
    return SubmittedReading(
        statements=_statements(form, report),
        impression=_text(form, "impression", "the impression"),
        measurements=_measurements(form, report),
        base_version=_int(form, "base_version"),
    )


def _field_label(name: str) -> str:
    """A form field as the physician knows it (the fields of templates/report.html)."""
    kind, _, rest = name.partition("_")
    if name in ("impression", "add"):
        return "the impression" if name == "impression" else "an added statement"
    if kind == "text" and rest.isdigit():
        return f"the text of statement {int(rest) + 1}"
    if kind == "m" and rest in MEASUREMENT_KEYS:
        return f"measurement {rest}"
    return f"the form's {name}" if name.isprintable() else "a field's name"


def _statements(form: FormData, report: Report) -> list[tuple[str, str]]:
    count = _int(form, "statement_count")
    if count != len(report.statements):
        raise FormProblem("the statements changed since the form was loaded: reload the page")
    kept: list[tuple[str, str]] = []
    for index, statement in enumerate(report.statements):
        if form.get(f"code_{index}") != statement.code:
            raise FormProblem(f"statement {index + 1}: its code does not match the report")
        if form.get(f"remove_{index}"):
            continue
        text = _text(form, f"text_{index}", f"the text of statement {statement.code}")
        kept.append((statement.code, text or statement.text))
    for raw in form.getlist("add"):
        entry = str(raw).strip()
        if not entry:
            continue
        code = _code_of(entry)
        if code not in {c for c, _ in kept}:
            kept.append((code, ""))  # "": the catalogue's wording
    return kept


def _code_of(entry: str) -> str:
    """The statement code of an 'add' field: 'AFIB — Atrial fibrillation' as the list
    offers it, a bare code, a statement's exact text, or words only one statement has."""
    code = entry.split(_SEPARATOR, 1)[0].strip()
    if catalogue_entry(code.upper()) is not None:
        return code.upper()
    matches = statement_catalogue(entry)
    exact = [match for match in matches if match.text.lower() == entry.lower()]
    if len(exact) == 1 or len(matches) == 1:
        return (exact or matches)[0].code
    found = f"{len(matches)} statements match" if matches else "no statement matches"
    raise FormProblem(f"added statement {entry[:60]!r}: {found}; pick one from the list")


def _measurements(form: FormData, report: Report) -> dict[str, float | None]:
    """Measurements whose field differs from the report's (rounded as shown)."""
    changed: dict[str, float | None] = {}
    for key in MEASUREMENT_KEYS:
        raw = form.get(f"m_{key}")
        if raw is None:
            continue
        current = getattr(report.measurements, key)
        entry = str(raw).strip()
        if entry == shown_value(current):
            continue
        if not entry:
            changed[key] = None
            continue
        try:
            value = float(entry.replace(",", "."))
        except ValueError:
            raise FormProblem(f"measurement {key}: {entry!r} is not a number") from None
        if not math.isfinite(value) or not -10_000 < value < 10_000:
            raise FormProblem(f"measurement {key}: {entry!r} is out of range")
        changed[key] = value
    return changed


def shown_value(value: float | None) -> str:
    """A measurement as the form shows it: whole units, empty when not measured."""
    return "" if value is None else str(round(value))


def _text(form: FormData, name: str, what: str) -> str:
    value = str(form.get(name, "")).strip()
    if len(value) > MAX_TEXT:
        raise FormProblem(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _int(form: FormData, name: str) -> int:
    try:
        return int(str(form.get(name, "")))
    except ValueError:
        raise FormProblem(f"the form's {name} is missing: reload the page") from None
