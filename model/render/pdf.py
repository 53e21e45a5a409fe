"""The vector PDF: the report as a cart prints it, for people and the EHR.

Page 1 is the 12-lead page with the PNG's geometry (grid, pulses, traces, labels) and,
around it, what a cart's printout says: patient and acquisition (only with `header`),
the measurements, the report's status, impression and statements, the engine that
produced it and its technical notes. Text that does not fit the page-1 bands continues
on further pages; nothing is cut. Paths are compact (model/render/pdf_paths.py), fonts
are the PDF standard ones (nothing embedded), so a 10 s 12-lead report is about 30 KB.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from reportlab.lib.colors import Color
from reportlab.lib.utils import simpleSplit
from reportlab.pdfgen import canvas as pdf_canvas

from model.ecg import Ecg
from model.render import page as paper
from model.render.pdf_paths import (
    PT_PER_MM,
    page_units_matrix,
    polyline_ops,
    to_units,
    traces_ops,
    units,
)
from model.report import Report
from model.report_text import (
    interpretation_lines,
    measurement_rows,
    produced_by,
    status_text,
    technical_notes,
)

# zlib level for the page streams, measured in bench/render.py on the compact paths:
# level 3 is ~10% smaller than 1 for ~1 ms; 6 and 9 save ~8% more for 4-18 ms.
PDF_ZLIB_LEVEL = 3
REGULAR, BOLD = "Helvetica", "Helvetica-Bold"
HEADER_SIZE_MM = 2.6
LINE_PITCH_MM = 3.3
HEADER_BASELINES_MM = tuple(6.5 + LINE_PITCH_MM * row for row in range(7))
FOOTER_BASELINES_MM = (204.0, 207.6, 211.2)
CONTINUED = "(continued on the next page)"
_BLANK = (REGULAR, "")
_LAST_TEXT_BASELINE_MM = 208.0


@dataclass(frozen=True)
class _Column:
    x_mm: float
    width_mm: float


PATIENT_COLUMN = _Column(paper.GRID_LEFT_MM, 86.0)
MEASUREMENT_COLUMN = _Column(100.0, 40.0)
INTERPRETATION_COLUMN = _Column(144.0, paper.GRID_RIGHT_MM - 144.0)
FULL_WIDTH = _Column(paper.GRID_LEFT_MM, paper.GRID_RIGHT_MM - paper.GRID_LEFT_MM)


class _Flate:
    """FlateDecode at PDF_ZLIB_LEVEL for the page streams (reportlab's own filter is level 6)."""

    pdfname = "FlateDecode"

    def encode(self, content: str | bytes) -> bytes:
        data = content.encode("utf-8") if isinstance(content, str) else content
        return zlib.compress(data, PDF_ZLIB_LEVEL)


def pdf_colour(rgb: tuple[int, int, int]) -> Color:
    return Color(*(channel / 255.0 for channel in rgb))


def pdf_xy(x_mm: float, y_mm: float) -> tuple[float, float]:
    """Page mm from the top-left to PDF points from the bottom-left."""
    return x_mm * PT_PER_MM, (paper.PAGE_HEIGHT_MM - y_mm) * PT_PER_MM


def render_pdf(
    ecg: Ecg, header: bool = True, layout: str = paper.DEFAULT_LAYOUT, report: Report | None = None
) -> bytes:
    """The report as a vector PDF (paths and text, no images), page 1 with the PNG's geometry.

    `header` puts the patient and acquisition on it (the only patient data on the page);
    `report` its measurements, status, interpretation, engine and technical notes.
    `invariant` keeps the bytes reproducible (no creation timestamp or random document ID);
    the document info carries no patient data.
    """
    chosen = paper.layout_named(layout)
    out = io.BytesIO()
    size_pt = (paper.PAGE_WIDTH_MM * PT_PER_MM, paper.PAGE_HEIGHT_MM * PT_PER_MM)
    page = pdf_canvas.Canvas(out, pagesize=size_pt, invariant=True, pageCompression=0)
    # With reportlab's page compression off, the document's default filters apply to every
    # stream (here only the page contents: the standard fonts embed none).
    page._doc.defaultStreamFilters = [_Flate()]
    page.setTitle("12-lead ECG report" if report is not None else "12-lead ECG")
    page.addLiteral(f"q {page_units_matrix()}\n{_grid_ops()}\n{_marks_and_traces(ecg, chosen)}\nQ")
    _lead_labels(page, chosen)
    overflow = _first_page_text(page, ecg, chosen, header, report)
    if overflow:
        _continuation_pages(page, ecg, header, overflow)
    page.showPage()
    page.save()
    return out.getvalue()


@lru_cache(maxsize=1)
def _grid_ops() -> str:
    """The grid in page units, one path per line weight: the same on every page."""
    top, bottom = units(paper.GRID_TOP_MM), units(paper.GRID_BOTTOM_MM)
    left, right = units(paper.GRID_LEFT_MM), units(paper.GRID_RIGHT_MM)
    ops = []
    for step, width_mm, rgb in paper.GRID_WEIGHTS:
        xs = paper.grid_positions_mm(paper.GRID_LEFT_MM, paper.GRID_RIGHT_MM, step)
        ys = paper.grid_positions_mm(paper.GRID_TOP_MM, paper.GRID_BOTTOM_MM, step)
        lines = [f"{units(x)} {top} m {units(x)} {bottom} l" for x in xs]
        lines += [f"{left} {units(y)} m {right} {units(y)} l" for y in ys]
        ops.append(f"{_stroke_colour(rgb)} {units(width_mm)} w\n" + "\n".join(lines) + " S")
    return "\n".join(ops)


def _stroke_colour(rgb: tuple[int, int, int]) -> str:
    return " ".join(f"{channel / 255.0:.4g}" for channel in rgb) + " RG"


def _marks_and_traces(ecg: Ecg, layout: paper.Layout) -> str:
    """Calibration pulses, column ticks and traces in black, round caps and joins (a lone
    sample between gaps still shows as a dot)."""
    marks = [paper.cal_pulse_mm(baseline) for baseline in layout.baselines_mm]
    marks += [paper.separator_mm(cell) for cell in layout.separators]
    ops = [f"{_stroke_colour(paper.INK_RGB)} {units(paper.TRACE_LINE_MM)} w 1 J 1 j"]
    ops += [polyline_ops(to_units(mark)) for mark in marks]
    ops.append(traces_ops(ecg, layout.cells))
    return "\n".join(ops)


def _lead_labels(page: pdf_canvas.Canvas, layout: paper.Layout) -> None:
    page.setFillColor(pdf_colour(paper.INK_RGB))
    page.setFont(BOLD, paper.LABEL_SIZE_MM * PT_PER_MM)
    for cell in layout.cells:
        x_mm, y_mm = cell.label_xy_mm
        page.drawString(*pdf_xy(x_mm, y_mm + paper.LABEL_SIZE_MM), cell.lead)


def _first_page_text(
    page: pdf_canvas.Canvas, ecg: Ecg, layout: paper.Layout, header: bool, report: Report | None
) -> list[tuple[str, str]]:
    """Header band and footer of page 1; returns what did not fit, as (font, line)."""
    _draw(page, FOOTER_BASELINES_MM[0], FULL_WIDTH, [(REGULAR, paper.footer_text(ecg, layout))])
    if header:
        meta = ecg.metadata
        fields = dict(paper.patient_fields(meta))
        identity = f"ID: {fields['ID']}    Born: {fields['Born']}    Sex: {fields['Sex']}"
        lines = [(BOLD, fields["Name"]), (REGULAR, identity)]
        lines += [(REGULAR, f"{label}: {value}") for label, value in paper.study_fields(meta)]
        _draw(page, HEADER_BASELINES_MM[0], PATIENT_COLUMN, lines)
    if report is None:
        return []
    _measurements(page, report)
    overflow = []
    status = _wrapped(BOLD, [status_text(report)], INTERPRETATION_COLUMN)
    statements = _wrapped(REGULAR, interpretation_lines(report), INTERPRETATION_COLUMN)
    room = len(HEADER_BASELINES_MM) - len(status)
    if len(statements) > room:
        overflow += [*status, *statements, _BLANK]
        statements = [*statements[: room - 1], (REGULAR, CONTINUED)]
    _draw(page, HEADER_BASELINES_MM[0], INTERPRETATION_COLUMN, status + statements)
    notes = _wrapped(REGULAR, [technical_notes(report.warnings)], FULL_WIDTH)
    if len(notes) > 1:
        overflow += [*notes, _BLANK]
        notes = [(REGULAR, f"Technical notes {CONTINUED}")]
    footer = [(REGULAR, produced_by(report)), *notes]
    _draw(page, FOOTER_BASELINES_MM[1], FULL_WIDTH, footer)
    return [*overflow, (REGULAR, produced_by(report))] if overflow else []


def _measurements(page: pdf_canvas.Canvas, report: Report) -> None:
    column = MEASUREMENT_COLUMN
    page.setFont(BOLD, HEADER_SIZE_MM * PT_PER_MM)
    page.drawString(*pdf_xy(column.x_mm, HEADER_BASELINES_MM[0]), "Measurements")
    page.setFont(REGULAR, HEADER_SIZE_MM * PT_PER_MM)
    for (label, value), y_mm in zip(measurement_rows(report), HEADER_BASELINES_MM[1:]):
        page.drawString(*pdf_xy(column.x_mm, y_mm), label)
        page.drawRightString(*pdf_xy(column.x_mm + column.width_mm, y_mm), value)


def _continuation_pages(
    page: pdf_canvas.Canvas, ecg: Ecg, header: bool, lines: list[tuple[str, str]]
) -> None:
    """The text that did not fit page 1, in full, on as many pages as it takes; each page
    names the patient again when the report does."""
    title = "12-lead ECG report, continued"
    if header:
        fields = dict(paper.patient_fields(ecg.metadata))
        title += f"    {fields['Name']}    ID: {fields['ID']}    Born: {fields['Born']}"
    per_page = int((_LAST_TEXT_BASELINE_MM - HEADER_BASELINES_MM[2]) / LINE_PITCH_MM)
    for start in range(0, len(lines), per_page):
        page.showPage()
        _draw(page, HEADER_BASELINES_MM[0], FULL_WIDTH, [(BOLD, title)])
        _draw(page, HEADER_BASELINES_MM[2], FULL_WIDTH, lines[start : start + per_page])


def _wrapped(font: str, texts: Iterable[str], column: _Column) -> list[tuple[str, str]]:
    width_pt = column.width_mm * PT_PER_MM
    size_pt = HEADER_SIZE_MM * PT_PER_MM
    return [
        (font, line)
        for text in texts
        if text
        for line in simpleSplit(text, font, size_pt, width_pt) or [""]
    ]


def _draw(
    page: pdf_canvas.Canvas, first_baseline_mm: float, column: _Column, lines: list[tuple[str, str]]
) -> None:
    """Lines from a baseline down, one pitch apart; a line wider than its column (a long
    patient field) is shortened with an ellipsis rather than run into the next column."""
    size_pt = HEADER_SIZE_MM * PT_PER_MM
    width_pt = column.width_mm * PT_PER_MM
    for row, (font, text) in enumerate(lines):
        shown = simpleSplit(text, font, size_pt, width_pt)
        line = shown[0] + " ..." if len(shown) > 1 else text
        page.setFont(font, size_pt)
        page.drawString(*pdf_xy(column.x_mm, first_baseline_mm + row * LINE_PITCH_MM), line)
