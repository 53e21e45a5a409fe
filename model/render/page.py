"""The paper page both renderers draw: geometry, layouts, traces in page millimetres, and
the text every page carries.

One geometry in millimetres measured from the page's top-left corner, so that grid,
calibration pulses and traces line up exactly in the PNG and the PDF: 25 mm/s, 10 mm/mV,
1 mm minor and 5 mm major grid. The page is US Letter landscape (279.4 x 215.9 mm,
11 x 8.5 in), the classic cart paper size; it is a whole number of pixels at any integer
DPI, so the mm -> px mapping (dpi / 25.4) needs no fudge.

Patient data appears only in the header band (top of the page). Without the header that
band stays blank and nothing else on the page depends on the metadata except the filter
text in the footer, so a header-less page carries no patient data at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.ecg import STANDARD_LEADS, Ecg, EcgMetadata

PAGE_WIDTH_MM = 279.4
PAGE_HEIGHT_MM = 215.9
MM_PER_S = 25.0
MM_PER_MV = 10.0
PAGE_DURATION_S = 10.0

GRID_LEFT_MM, GRID_RIGHT_MM = 10.0, 270.0
GRID_TOP_MM, GRID_BOTTOM_MM = 30.0, 200.0
ROWS_TOP_MM, ROWS_BOTTOM_MM = 35.0, 195.0  # rows sit 5 mm inside the grid: pulses stay on paper
MIN_BAND_HALF_MM = 12.5  # narrow rows (6x2, 12x1) may overlap neighbours up to +/-1.25 mV
TRACE_X0_MM = 20.0  # where t = 0 s is drawn; the calibration pulse sits in the 10 mm before it
HEADER_BASELINES_MM = (10.0, 17.0)  # patient line, study line; the band above the grid
FOOTER_BASELINE_MM = 208.0

_CAL_PULSE_MM = (
    (-8.0, 0.0),
    (-6.5, 0.0),
    (-6.5, -MM_PER_MV),
    (-1.5, -MM_PER_MV),
    (-1.5, 0.0),
    (0.0, 0.0),
)  # (dx, dy) from (TRACE_X0_MM, baseline): 1 mV high, 200 ms wide
_SEPARATOR_HALF_MM = 2.5
_LABEL_INSET_MM = 1.0
LABEL_SIZE_MM = 3.5
TEXT_SIZE_MM = 3.0

MINOR_LINE_MM, MAJOR_LINE_MM, TRACE_LINE_MM = 0.1, 0.2, 0.3
WHITE_RGB, INK_RGB = (255, 255, 255), (0, 0, 0)
MINOR_RGB, MAJOR_RGB = (250, 205, 205), (235, 125, 125)  # classic pink / red paper
# (spacing mm, line width mm, colour) of the minor and the major grid lines
GRID_WEIGHTS = ((1.0, MINOR_LINE_MM, MINOR_RGB), (5.0, MAJOR_LINE_MM, MAJOR_RGB))


@dataclass(frozen=True)
class Cell:
    """One lead over one time window, placed on the page.

    The window [t_start, t_end) in seconds is drawn with t_start at x_mm and the 0 mV
    baseline at y_mm, centred in a row row_height_mm tall.
    """

    lead: str
    t_start: float
    t_end: float
    x_mm: float
    y_mm: float
    row_height_mm: float

    @property
    def band_mm(self) -> tuple[float, float]:
        """Top and bottom page y the trace is clipped to: its row, widened for narrow rows
        as paper traces overlap, but never off the grid."""
        half = max(self.row_height_mm / 2, MIN_BAND_HALF_MM)
        return max(self.y_mm - half, GRID_TOP_MM), min(self.y_mm + half, GRID_BOTTOM_MM)

    @property
    def label_xy_mm(self) -> tuple[float, float]:
        """Top-left corner of the lead label: the row's top-left, clear of most traces."""
        return self.x_mm + _LABEL_INSET_MM, self.y_mm - self.row_height_mm / 2 + _LABEL_INSET_MM


@dataclass(frozen=True)
class Layout:
    """A page arrangement as plain data, so that augmentation can add layouts without code."""

    name: str
    cells: tuple[Cell, ...]

    @property
    def baselines_mm(self) -> tuple[float, ...]:
        """Rows that start at the page origin; each gets a calibration pulse."""
        return tuple(sorted({c.y_mm for c in self.cells if c.x_mm == TRACE_X0_MM}))

    @property
    def separators(self) -> tuple[Cell, ...]:
        """Cells that continue a row; a short tick marks where each begins."""
        return tuple(c for c in self.cells if c.x_mm > TRACE_X0_MM)


def _grid_layout(name: str, rows: tuple[tuple[str, ...], ...], rhythm: str | None) -> Layout:
    """Rows of leads splitting the 10 s into equal consecutive windows, as carts print them."""
    all_rows = rows + (((rhythm,),) if rhythm else ())
    pitch = (ROWS_BOTTOM_MM - ROWS_TOP_MM) / len(all_rows)
    cells = []
    for row_index, leads in enumerate(all_rows):
        window = PAGE_DURATION_S / len(leads)
        y_mm = ROWS_TOP_MM + pitch * (row_index + 0.5)
        for col_index, lead in enumerate(leads):
            t_start = col_index * window
            cells.append(
                Cell(lead, t_start, t_start + window, TRACE_X0_MM + t_start * MM_PER_S, y_mm, pitch)
            )
    return Layout(name, tuple(cells))


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        _grid_layout(
            "3x4+1",
            (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6")),
            rhythm="II",
        ),
        _grid_layout(
            "6x2",
            (("I", "V1"), ("II", "V2"), ("III", "V3"), ("aVR", "V4"), ("aVL", "V5"), ("aVF", "V6")),
            rhythm=None,
        ),
        _grid_layout(
            "12x1",
            tuple((lead,) for lead in STANDARD_LEADS),
            rhythm=None,
        ),
    )
}
DEFAULT_LAYOUT = "3x4+1"


def layout_named(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; choose one of {sorted(LAYOUTS)}") from None


# ---------------------------------------------------------------- shared geometry and text


def cell_segments_mm(ecg: Ecg, cell: Cell) -> list[np.ndarray]:
    """The cell's trace as (n, 2) arrays of page mm, split at NaN gaps, clipped to the band.

    Empty when the lead is absent or the recording ends before the window starts.
    """
    if not ecg.has_lead(cell.lead):
        return []
    fs = ecg.sampling_rate
    first = int(np.ceil(cell.t_start * fs - 1e-9))
    # t_end is included, so that consecutive cells of a row join up
    last = min(int(np.floor(cell.t_end * fs + 1e-9)), ecg.n_samples - 1)
    if last < first:
        return []
    values = ecg.lead(cell.lead)[first : last + 1].astype(np.float64)
    x = cell.x_mm + (np.arange(first, last + 1) / fs - cell.t_start) * MM_PER_S
    band_top, band_bottom = cell.band_mm
    y = np.clip(cell.y_mm - values * MM_PER_MV, band_top, band_bottom)
    return [np.column_stack((x[run], y[run])) for run in _finite_runs(values)]


def _finite_runs(values: np.ndarray) -> list[slice]:
    """Slices of consecutive finite samples, so gaps in the data stay gaps on paper."""
    finite = np.isfinite(values)
    if finite.all():
        return [slice(0, len(values))]
    edges = np.flatnonzero(np.diff(np.concatenate(([False], finite, [False])).astype(np.int8)))
    return [slice(start, stop) for start, stop in zip(edges[::2], edges[1::2])]


def cal_pulse_mm(baseline_mm: float) -> list[tuple[float, float]]:
    return [(TRACE_X0_MM + dx, baseline_mm + dy) for dx, dy in _CAL_PULSE_MM]


def separator_mm(cell: Cell) -> list[tuple[float, float]]:
    """A short vertical tick where a row's next column begins, as carts print it."""
    half = _SEPARATOR_HALF_MM
    return [(cell.x_mm, cell.y_mm - half), (cell.x_mm, cell.y_mm + half)]


def footer_text(ecg: Ecg, layout: Layout) -> str:
    """Speed, gain, filter, and what of the recording the page does not show, so that
    nothing is left out silently (later seconds, leads the layout has no cell for)."""
    parts = [f"{MM_PER_S:g} mm/s", f"{MM_PER_MV:g} mm/mV"]
    if ecg.metadata.filters:
        parts.append(f"Filter: {ecg.metadata.filters}")
    else:
        parts += ["Filter: not stated", f"Sampling: {ecg.sampling_rate:g} Hz"]
    if ecg.duration_s > PAGE_DURATION_S:
        parts.append(f"Shown: first {PAGE_DURATION_S:g} s of {ecg.duration_s:.1f} s")
    elif ecg.duration_s < PAGE_DURATION_S:
        parts.append(f"Recording: {ecg.duration_s:.1f} s")
    unplaced = [name for name in ecg.lead_names if name not in {c.lead for c in layout.cells}]
    if unplaced:
        parts.append(f"Not on this layout: {', '.join(unplaced)}")
    return "   ".join(parts)


def patient_fields(meta: EcgMetadata) -> list[tuple[str, str]]:
    """(label, value) of whom the ECG is of; unknown values are '-' so gaps are visible."""
    name = (meta.patient_name or "").replace("^", ", ", 1).replace("^", " ").strip(", ")
    return [
        ("Name", _shown(name)),
        ("ID", _shown(meta.patient_id)),
        ("Born", _shown(meta.patient_birth_date)),
        ("Sex", _shown(meta.patient_sex)),
    ]


def study_fields(meta: EcgMetadata) -> list[tuple[str, str]]:
    """(label, value) of when, where and by what the ECG was recorded."""
    acquired = meta.acquisition_time and meta.acquisition_time.strftime("%Y-%m-%d %H:%M:%S")
    device = " ".join(part for part in (meta.device_manufacturer, meta.device_model) if part)
    return [
        ("Acquired", _shown(acquired)),
        ("Accession", _shown(meta.accession_number)),
        ("Device", _shown(device)),
        ("Institution", _shown(meta.institution_name)),
    ]


def header_lines(meta: EcgMetadata) -> tuple[str, str]:
    """Patient line and study line, as the PNG's header band shows them."""
    return tuple(
        "    ".join(f"{label}: {value}" for label, value in fields)
        for fields in (patient_fields(meta), study_fields(meta))
    )


def _shown(value: object) -> str:
    return str(value) if value not in (None, "") else "-"


def grid_positions_mm(start: float, stop: float, step: float) -> np.ndarray:
    return start + step * np.arange(round((stop - start) / step) + 1)
