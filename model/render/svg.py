"""The 12-lead page as SVG for the web over-read view: the PDF's grid, calibration pulses,
traces and lead labels, sharp at any zoom, inline in the page (a browser shows SVG
everywhere; PDF viewers differ and headless ones show nothing).

Only the trace area: the page around it (patient, measurements, statements) is HTML on
the web page, so the SVG carries no patient data. Coordinates are whole 0.01 mm units
(pdf_paths.UNIT_MM), the traces the PDF's compact polylines written as relative moves,
the grid two <pattern>s: a 10 s 12-lead page is about 40 KB before gzip.
"""

from __future__ import annotations

import numpy as np

from model.ecg import Ecg
from model.render import page as paper
from model.render.pdf_paths import cell_polylines, to_units, units

_MARGIN_MM = 1.0


def render_svg(ecg: Ecg, layout: str = paper.DEFAULT_LAYOUT, title: str = "12-lead ECG") -> str:
    """The page's trace area as a standalone SVG document (text), scaled by its viewBox."""
    chosen = paper.layout_named(layout)
    left, top = units(paper.GRID_LEFT_MM - _MARGIN_MM), units(paper.GRID_TOP_MM - _MARGIN_MM)
    width = units(paper.GRID_RIGHT_MM - paper.GRID_LEFT_MM + 2 * _MARGIN_MM)
    height = units(paper.GRID_BOTTOM_MM - paper.GRID_TOP_MM + 2 * _MARGIN_MM)
    parts = [
        (
            '<svg xmlns="http://www.w3.org/2000/svg" role="img" '
            f'viewBox="{left} {top} {width} {height}" preserveAspectRatio="xMidYMid meet">'
        ),
        f"<title>{_escape(title)}</title>",
        _grid(),
        (
            f'<g fill="none" stroke="{_rgb(paper.INK_RGB)}" '
            f'stroke-width="{units(paper.TRACE_LINE_MM)}" '
            'stroke-linecap="round" stroke-linejoin="round">'
        ),
        _path(_marks(chosen)),
        *(_path(polylines) for polylines in cell_polylines(ecg, chosen.cells) if polylines),
        "</g>",
        _labels(chosen),
        "</svg>",
    ]
    return "\n".join(parts)


def _grid() -> str:
    """Minor and major lines as patterns anchored at the grid's top-left corner."""
    x0, y0 = units(paper.GRID_LEFT_MM), units(paper.GRID_TOP_MM)
    w = units(paper.GRID_RIGHT_MM - paper.GRID_LEFT_MM)
    h = units(paper.GRID_BOTTOM_MM - paper.GRID_TOP_MM)
    defs, rects = [], []
    for index, (step_mm, line_mm, rgb) in enumerate(paper.GRID_WEIGHTS):
        step, line = units(step_mm), units(line_mm)
        defs.append(
            f'<pattern id="g{index}" x="{x0}" y="{y0}" width="{step}" height="{step}" '
            f'patternUnits="userSpaceOnUse"><path d="M{step} 0V{step}H0" fill="none" '
            f'stroke="{_rgb(rgb)}" stroke-width="{line}"/></pattern>'
        )
        rects.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="url(#g{index})"/>')
    # the grid's own top and left edges (the patterns draw each cell's bottom and right)
    major_rgb, major_line = _rgb(paper.MAJOR_RGB), units(paper.MAJOR_LINE_MM)
    edge = f'<path d="M{x0} {y0 + h}V{y0}H{x0 + w}" fill="none" stroke="{major_rgb}" '
    edge += f'stroke-width="{major_line}"/>'
    return (
        f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#fff"/>'
        f"<defs>{''.join(defs)}</defs>{''.join(rects)}{edge}"
    )


def _marks(layout: paper.Layout) -> list[np.ndarray]:
    marks = [paper.cal_pulse_mm(baseline) for baseline in layout.baselines_mm]
    marks += [paper.separator_mm(cell) for cell in layout.separators]
    return [np.asarray(mark, dtype=np.float64) for mark in marks]


def _path(polylines: list[np.ndarray]) -> str:
    """One <path> for these polylines: an absolute move to each start, then relative lines."""
    commands = []
    for points in polylines:
        xy = to_units(points)
        if len(xy) == 1:
            xy = np.vstack((xy, xy))
        steps = np.diff(xy, axis=0).ravel().tolist()
        commands.append(f"M{xy[0, 0]} {xy[0, 1]}l" + " ".join(map(str, steps)))
    return f'<path d="{"".join(commands)}"/>'


def _labels(layout: paper.Layout) -> str:
    size = units(paper.LABEL_SIZE_MM)
    texts = []
    for cell in layout.cells:
        x_mm, y_mm = cell.label_xy_mm
        texts.append(
            f'<text x="{units(x_mm)}" y="{units(y_mm + paper.LABEL_SIZE_MM)}">{cell.lead}</text>'
        )
    return (
        f'<g font-family="Helvetica, Arial, sans-serif" font-weight="bold" font-size="{size}" '
        f'fill="{_rgb(paper.INK_RGB)}">{"".join(texts)}</g>'
    )


def _rgb(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
