"""Paper-layout ECG pages: a fast raster PNG (for models and viewers) and a vector PDF (for people).

Both outputs share one geometry in millimetres measured from the page's top-left corner, so
that grid, calibration pulses and traces line up exactly: 25 mm/s, 10 mm/mV, 1 mm minor and
5 mm major grid. The page is US Letter landscape (279.4 x 215.9 mm, 11 x 8.5 in), the classic
cart paper size; it is a whole number of pixels at any integer DPI, so the mm -> px mapping
(dpi / 25.4) needs no fudge. The raster path uses numpy + Pillow instead of matplotlib because
a page must cost tens of milliseconds (see bench/render.py), not hundreds.

Patient data appears only in the optional header band (top of the page). Without the header
that band stays blank and nothing else on the page depends on the metadata except the filter
text in the footer, so a header-less page carries no patient data at all.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.colors import Color
from reportlab.pdfgen import canvas as pdf_canvas

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
_WHITE, INK_RGB = (255, 255, 255), (0, 0, 0)
MINOR_RGB, MAJOR_RGB = (250, 205, 205), (235, 125, 125)  # classic pink / red paper
_PALETTE = (_WHITE, MINOR_RGB, MAJOR_RGB, INK_RGB)
_WHITE_IDX, _MINOR_IDX, _MAJOR_IDX, _INK_IDX = range(len(_PALETTE))
# Measured in bench/render.py (the page is 2-bit palette data): level 1 takes about half the
# encode time of the default 6 for ~40 KiB instead of ~25 KiB a page; 0 saves ~3 ms but
# writes ~900 KiB pages.
PNG_COMPRESS_LEVEL = 1
_MIN_DPI, _MAX_DPI = 50, 600


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


def _layout(name: str) -> Layout:
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


def _header_lines(meta: EcgMetadata) -> tuple[str, str]:
    """Patient line and study line; unknown fields are shown as '-' so gaps are visible."""

    def show(value: object) -> str:
        return str(value) if value not in (None, "") else "-"

    name = (meta.patient_name or "").replace("^", ", ", 1).replace("^", " ").strip(", ")
    acquired = meta.acquisition_time and meta.acquisition_time.strftime("%Y-%m-%d %H:%M:%S")
    device = " ".join(part for part in (meta.device_manufacturer, meta.device_model) if part)
    patient = (
        f"Name: {show(name)}    ID: {show(meta.patient_id)}    "
        f"Born: {show(meta.patient_birth_date)}    Sex: {show(meta.patient_sex)}"
    )
    study = (
        f"Acquired: {show(acquired)}    Accession: {show(meta.accession_number)}    "
        f"Device: {show(device)}    Institution: {show(meta.institution_name)}"
    )
    return patient, study


def _grid_positions_mm(start: float, stop: float, step: float) -> np.ndarray:
    return start + step * np.arange(round((stop - start) / step) + 1)


# ---------------------------------------------------------------------------------- PNG


def _check_dpi(dpi: int) -> None:
    if not isinstance(dpi, (int, np.integer)) or not _MIN_DPI <= dpi <= _MAX_DPI:
        raise ValueError(f"dpi must be an integer in [{_MIN_DPI}, {_MAX_DPI}], got {dpi!r}")


def _px_width(mm: float, px_per_mm: float) -> int:
    return max(1, round(mm * px_per_mm))


def _odd_px_width(mm: float, px_per_mm: float) -> int:
    """Nearest odd width: Pillow centres odd-width lines on the point, but puts even-width
    ones half a pixel to one side depending on the direction of travel."""
    return 2 * round((mm * px_per_mm - 1) / 2) + 1 if mm * px_per_mm > 1 else 1


@lru_cache(maxsize=16)
def _font(size_px: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font: the same glyphs on every machine, no system font needed."""
    return ImageFont.load_default(size=size_px)


def _paint_lines(
    pixels: np.ndarray,
    positions_px: np.ndarray,
    span: slice,
    width: int,
    colour: int,
    vertical: bool,
) -> None:
    """Set whole grid lines at once; each line is `width` px centred on its exact position."""
    starts = np.rint(positions_px - (width - 1) / 2).astype(int)
    for offset in range(width):
        index = starts + offset
        if vertical:
            pixels[span, index] = colour
        else:
            pixels[index, span] = colour


def _draw_grid(pixels: np.ndarray, px_per_mm: float) -> None:
    rows = slice(round(GRID_TOP_MM * px_per_mm), round(GRID_BOTTOM_MM * px_per_mm) + 1)
    cols = slice(round(GRID_LEFT_MM * px_per_mm), round(GRID_RIGHT_MM * px_per_mm) + 1)
    for step, width_mm, colour in (
        (1.0, MINOR_LINE_MM, _MINOR_IDX),
        (5.0, MAJOR_LINE_MM, _MAJOR_IDX),
    ):
        width = _px_width(width_mm, px_per_mm)
        xs = _grid_positions_mm(GRID_LEFT_MM, GRID_RIGHT_MM, step) * px_per_mm
        ys = _grid_positions_mm(GRID_TOP_MM, GRID_BOTTOM_MM, step) * px_per_mm
        _paint_lines(pixels, xs, rows, width, colour, vertical=True)
        _paint_lines(pixels, ys, cols, width, colour, vertical=False)


def _px_points(points_mm: np.ndarray | list[tuple[float, float]], px_per_mm: float) -> list[int]:
    """Flat [x0, y0, x1, y1, ...] of whole pixels, the form ImageDraw.line takes fastest."""
    return np.rint(np.asarray(points_mm) * px_per_mm).astype(np.int32).ravel().tolist()


@lru_cache(maxsize=8)
def _background(dpi: int, layout_name: str) -> Image.Image:
    """Everything that does not depend on the ECG: grid, calibration pulses, ticks, labels.

    Cached per (dpi, layout); callers copy it. A four-colour palette image keeps drawing at
    one byte per pixel, and Pillow writes it as a 2-bit PNG, a quarter of the data to zlib.
    """
    layout = _layout(layout_name)
    px_per_mm = dpi / 25.4
    size = (round(PAGE_WIDTH_MM * px_per_mm), round(PAGE_HEIGHT_MM * px_per_mm))
    pixels = np.full((size[1], size[0]), _WHITE_IDX, dtype=np.uint8)
    _draw_grid(pixels, px_per_mm)
    image = Image.fromarray(pixels, mode="P")
    image.putpalette([channel for rgb in _PALETTE for channel in rgb])
    draw = ImageDraw.Draw(image)
    trace_width = _odd_px_width(TRACE_LINE_MM, px_per_mm)
    for baseline in layout.baselines_mm:
        draw.line(_px_points(cal_pulse_mm(baseline), px_per_mm), fill=_INK_IDX, width=trace_width)
    for cell in layout.separators:
        draw.line(_px_points(separator_mm(cell), px_per_mm), fill=_INK_IDX, width=trace_width)
    label_font = _font(round(LABEL_SIZE_MM * px_per_mm))
    for cell in layout.cells:
        x_mm, y_mm = cell.label_xy_mm
        draw.text((x_mm * px_per_mm, y_mm * px_per_mm), cell.lead, fill=_INK_IDX, font=label_font)
    return image


def _draw_traces(draw: ImageDraw.ImageDraw, ecg: Ecg, layout: Layout, px_per_mm: float) -> None:
    width = _odd_px_width(TRACE_LINE_MM, px_per_mm)
    for cell in layout.cells:
        for segment in cell_segments_mm(ecg, cell):
            if len(segment) == 1:
                segment = np.vstack((segment, segment))  # a lone sample between gaps is a dot
            draw.line(_px_points(segment, px_per_mm), fill=_INK_IDX, width=width)


def _draw_png_text(
    draw: ImageDraw.ImageDraw, ecg: Ecg, layout: Layout, px_per_mm: float, header: bool
) -> None:
    font = _font(round(TEXT_SIZE_MM * px_per_mm))
    left = GRID_LEFT_MM * px_per_mm
    draw.text(
        (left, FOOTER_BASELINE_MM * px_per_mm),
        footer_text(ecg, layout),
        fill=_INK_IDX,
        font=font,
        anchor="ls",
    )
    if header:
        for line, y_mm in zip(_header_lines(ecg.metadata), HEADER_BASELINES_MM):
            draw.text((left, y_mm * px_per_mm), line, fill=_INK_IDX, font=font, anchor="ls")


def render_png(
    ecg: Ecg, dpi: int = 200, header: bool = False, layout: str = DEFAULT_LAYOUT
) -> bytes:
    """A paper-layout page as PNG bytes (palette image). No patient data unless header=True."""
    _check_dpi(dpi)
    chosen = _layout(layout)
    page = _background(int(dpi), layout).copy()
    px_per_mm = dpi / 25.4
    draw = ImageDraw.Draw(page)
    _draw_traces(draw, ecg, chosen, px_per_mm)
    _draw_png_text(draw, ecg, chosen, px_per_mm, header)
    out = io.BytesIO()
    page.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL, dpi=(dpi, dpi))
    return out.getvalue()


# ---------------------------------------------------------------------------------- PDF

_PT_PER_MM = 72.0 / 25.4
# A PDF trace keeps, per column of this width, the samples with the column's lowest and
# highest value (in time order): every peak and pacer spike keeps its full amplitude and
# its exact position, while a 1000 Hz+ recording no longer costs more than the page shows.
# At 25 mm/s 0.1 mm is 4 ms; 500 Hz samples are 0.05 mm apart and are all kept.
_PDF_COLUMN_MM = 0.1
# Coordinates are written as fixed-point ddd.ddd points (1/1000 pt, 0.35 micrometre),
# produced by numpy arithmetic instead of one formatted Python float per sample.
_PDF_FIXED_DIGITS, _PDF_FIXED_DECIMALS = 6, 3


class _FastFlate:
    """FlateDecode at zlib level 1 for the page stream. reportlab's own filter uses the
    default level 6, which took two thirds of a page's time on the trace text; level 1 is
    about 5x faster for about 20% more bytes (bench/render.py)."""

    pdfname = "FlateDecode"

    def encode(self, content: str | bytes) -> bytes:
        data = content.encode("utf-8") if isinstance(content, str) else content
        return zlib.compress(data, 1)


def pdf_colour(rgb: tuple[int, int, int]) -> Color:
    return Color(*(channel / 255.0 for channel in rgb))


def pdf_xy(x_mm: float, y_mm: float) -> tuple[float, float]:
    """Page mm from the top-left to PDF points from the bottom-left."""
    return x_mm * _PT_PER_MM, (PAGE_HEIGHT_MM - y_mm) * _PT_PER_MM


def _decimated(points_mm: np.ndarray, samples_per_column: int) -> np.ndarray:
    """The points that draw the same trace at _PDF_COLUMN_MM resolution: per group of
    `samples_per_column` samples its minimum and maximum, plus the segment's last point."""
    if samples_per_column < 3 or len(points_mm) <= samples_per_column:
        return points_mm
    columns = len(points_mm) // samples_per_column
    y = points_mm[: columns * samples_per_column, 1].reshape(columns, samples_per_column)
    starts = np.arange(columns) * samples_per_column
    extremes = np.sort(np.column_stack((y.argmin(axis=1), y.argmax(axis=1))), axis=1)
    keep = np.unique(
        np.concatenate(
            (
                (extremes + starts[:, None]).ravel(),
                np.arange(columns * samples_per_column, len(points_mm)),
                [len(points_mm) - 1],
            )
        )
    )
    return points_mm[keep]


def _pdf_fixed_point(values_pt: np.ndarray) -> np.ndarray:
    """(n, 7) ASCII bytes of each value as ddd.ddd; values must lie in [0, 1000) pt."""
    scaled = np.rint(values_pt * 10**_PDF_FIXED_DECIMALS).astype(np.int64)
    powers = 10 ** np.arange(_PDF_FIXED_DIGITS - 1, -1, -1)
    digits = (scaled[:, None] // powers % 10 + ord("0")).astype(np.uint8)
    whole = _PDF_FIXED_DIGITS - _PDF_FIXED_DECIMALS
    point = np.full((len(values_pt), 1), ord("."), dtype=np.uint8)
    return np.hstack((digits[:, :whole], point, digits[:, whole:]))


def _pdf_path_ops(points_mm: np.ndarray | list[tuple[float, float]]) -> str:
    """One stroked polyline as PDF operators: 'x y m' then 'x y l' per point, then 'S'."""
    mm = np.asarray(points_mm, dtype=np.float64)
    if len(mm) == 1:
        mm = np.vstack((mm, mm))  # a lone sample between gaps: round caps make it a dot
    x = _pdf_fixed_point(mm[:, 0] * _PT_PER_MM)
    y = _pdf_fixed_point((PAGE_HEIGHT_MM - mm[:, 1]) * _PT_PER_MM)
    ops = np.full((len(mm), 1), ord("l"), dtype=np.uint8)
    ops[0] = ord("m")
    space = np.full((len(mm), 1), ord(" "), dtype=np.uint8)
    newline = np.full((len(mm), 1), ord("\n"), dtype=np.uint8)
    lines = np.hstack((x, space, y, space, ops, newline))
    return lines.tobytes().decode("ascii") + "S"


@lru_cache(maxsize=1)
def _pdf_grid_ops() -> str:
    """The grid's operators, built once: it is the same on every page."""
    ops = []
    for step, width_mm, rgb in (
        (1.0, MINOR_LINE_MM, MINOR_RGB),
        (5.0, MAJOR_LINE_MM, MAJOR_RGB),
    ):
        red, green, blue = (channel / 255.0 for channel in rgb)
        ops.append(f"{red:.4f} {green:.4f} {blue:.4f} RG {width_mm * _PT_PER_MM:.4f} w")
        for x_mm in _grid_positions_mm(GRID_LEFT_MM, GRID_RIGHT_MM, step):
            ops.append(_pdf_path_ops([(x_mm, GRID_TOP_MM), (x_mm, GRID_BOTTOM_MM)]))
        for y_mm in _grid_positions_mm(GRID_TOP_MM, GRID_BOTTOM_MM, step):
            ops.append(_pdf_path_ops([(GRID_LEFT_MM, y_mm), (GRID_RIGHT_MM, y_mm)]))
    return "\n".join(ops)


def _pdf_marks_and_traces(page: pdf_canvas.Canvas, ecg: Ecg, layout: Layout) -> None:
    page.setStrokeColor(pdf_colour(INK_RGB))
    page.setLineWidth(TRACE_LINE_MM * _PT_PER_MM)
    page.setLineJoin(1)
    page.setLineCap(1)  # round: a lone sample between gaps still shows as a dot
    paths = [_pdf_path_ops(cal_pulse_mm(baseline)) for baseline in layout.baselines_mm]
    paths += [_pdf_path_ops(separator_mm(cell)) for cell in layout.separators]
    samples_per_column = int(_PDF_COLUMN_MM / MM_PER_S * ecg.sampling_rate + 1e-9)
    for cell in layout.cells:
        paths += [
            _pdf_path_ops(_decimated(segment, samples_per_column))
            for segment in cell_segments_mm(ecg, cell)
        ]
    page.addLiteral("\n".join(paths))


def pdf_text(page: pdf_canvas.Canvas, ecg: Ecg, layout: Layout, header: bool) -> None:
    page.setFillColor(pdf_colour(INK_RGB))
    page.setFont("Helvetica-Bold", LABEL_SIZE_MM * _PT_PER_MM)
    for cell in layout.cells:
        x_mm, y_mm = cell.label_xy_mm
        page.drawString(*pdf_xy(x_mm, y_mm + LABEL_SIZE_MM), cell.lead)
    page.setFont("Helvetica", TEXT_SIZE_MM * _PT_PER_MM)
    page.drawString(*pdf_xy(GRID_LEFT_MM, FOOTER_BASELINE_MM), footer_text(ecg, layout))
    if header:
        for line, y_mm in zip(_header_lines(ecg.metadata), HEADER_BASELINES_MM):
            page.drawString(*pdf_xy(GRID_LEFT_MM, y_mm), line)


def render_pdf(ecg: Ecg, header: bool = True, layout: str = DEFAULT_LAYOUT) -> bytes:
    """A one-page vector PDF (paths and text, no images) with the same geometry as the PNG.

    `invariant` keeps the bytes reproducible (no creation timestamp or random document ID);
    the document info carries no patient data, only the page does when header=True.
    """
    chosen = _layout(layout)
    out = io.BytesIO()
    size_pt = (PAGE_WIDTH_MM * _PT_PER_MM, PAGE_HEIGHT_MM * _PT_PER_MM)
    page = pdf_canvas.Canvas(out, pagesize=size_pt, invariant=True, pageCompression=0)
    # With reportlab's page compression off, the document's default filters apply to every
    # stream (here only the page contents: the standard fonts embed none).
    page._doc.defaultStreamFilters = [_FastFlate()]
    page.setTitle("12-lead ECG")
    page.addLiteral(_pdf_grid_ops())
    _pdf_marks_and_traces(page, ecg, chosen)
    pdf_text(page, ecg, chosen, header)
    page.showPage()
    page.save()
    return out.getvalue()
