"""The raster page: a fast palette PNG, for models and viewers.

numpy + Pillow instead of matplotlib because a page must cost tens of milliseconds (see
bench/render.py), not hundreds. Without `header` the page carries no patient data: this
is the page a model is shown.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from model.ecg import Ecg
from model.render import page as paper

_PALETTE = (paper.WHITE_RGB, paper.MINOR_RGB, paper.MAJOR_RGB, paper.INK_RGB)
_WHITE_IDX, _MINOR_IDX, _MAJOR_IDX, _INK_IDX = range(len(_PALETTE))
# Measured in bench/render.py (the page is 2-bit palette data): level 1 takes about half the
# encode time of the default 6 for ~40 KiB instead of ~25 KiB a page; 0 saves ~3 ms but
# writes ~900 KiB pages.
PNG_COMPRESS_LEVEL = 1
_MIN_DPI, _MAX_DPI = 50, 600


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
    rows = slice(round(paper.GRID_TOP_MM * px_per_mm), round(paper.GRID_BOTTOM_MM * px_per_mm) + 1)
    cols = slice(round(paper.GRID_LEFT_MM * px_per_mm), round(paper.GRID_RIGHT_MM * px_per_mm) + 1)
    for step, width_mm, colour in (
        (1.0, paper.MINOR_LINE_MM, _MINOR_IDX),
        (5.0, paper.MAJOR_LINE_MM, _MAJOR_IDX),
    ):
        width = _px_width(width_mm, px_per_mm)
        xs = paper.grid_positions_mm(paper.GRID_LEFT_MM, paper.GRID_RIGHT_MM, step) * px_per_mm
        ys = paper.grid_positions_mm(paper.GRID_TOP_MM, paper.GRID_BOTTOM_MM, step) * px_per_mm
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
    layout = paper.layout_named(layout_name)
    px_per_mm = dpi / 25.4
    size = (round(paper.PAGE_WIDTH_MM * px_per_mm), round(paper.PAGE_HEIGHT_MM * px_per_mm))
    pixels = np.full((size[1], size[0]), _WHITE_IDX, dtype=np.uint8)
    _draw_grid(pixels, px_per_mm)
    image = Image.fromarray(pixels, mode="P")
    image.putpalette([channel for rgb in _PALETTE for channel in rgb])
    draw = ImageDraw.Draw(image)
    trace_width = _odd_px_width(paper.TRACE_LINE_MM, px_per_mm)
    for baseline in layout.baselines_mm:
        draw.line(
            _px_points(paper.cal_pulse_mm(baseline), px_per_mm), fill=_INK_IDX, width=trace_width
        )
    for cell in layout.separators:
        draw.line(_px_points(paper.separator_mm(cell), px_per_mm), fill=_INK_IDX, width=trace_width)
    label_font = _font(round(paper.LABEL_SIZE_MM * px_per_mm))
    for cell in layout.cells:
        x_mm, y_mm = cell.label_xy_mm
        draw.text((x_mm * px_per_mm, y_mm * px_per_mm), cell.lead, fill=_INK_IDX, font=label_font)
    return image


def _draw_traces(
    draw: ImageDraw.ImageDraw, ecg: Ecg, layout: paper.Layout, px_per_mm: float
) -> None:
    width = _odd_px_width(paper.TRACE_LINE_MM, px_per_mm)
    for cell in layout.cells:
        for segment in paper.cell_segments_mm(ecg, cell):
            if len(segment) == 1:
                segment = np.vstack((segment, segment))  # a lone sample between gaps is a dot
            draw.line(_px_points(segment, px_per_mm), fill=_INK_IDX, width=width)


def _draw_png_text(
    draw: ImageDraw.ImageDraw, ecg: Ecg, layout: paper.Layout, px_per_mm: float, header: bool
) -> None:
    font = _font(round(paper.TEXT_SIZE_MM * px_per_mm))
    left = paper.GRID_LEFT_MM * px_per_mm
    draw.text(
        (left, paper.FOOTER_BASELINE_MM * px_per_mm),
        paper.footer_text(ecg, layout),
        fill=_INK_IDX,
        font=font,
        anchor="ls",
    )
    if header:
        for line, y_mm in zip(paper.header_lines(ecg.metadata), paper.HEADER_BASELINES_MM):
            draw.text((left, y_mm * px_per_mm), line, fill=_INK_IDX, font=font, anchor="ls")


def render_png(
    ecg: Ecg, dpi: int = 200, header: bool = False, layout: str = paper.DEFAULT_LAYOUT
) -> bytes:
    """A paper-layout page as PNG bytes (palette image). No patient data unless header=True."""
    _check_dpi(dpi)
    chosen = paper.layout_named(layout)
    page = _background(int(dpi), layout).copy()
    px_per_mm = dpi / 25.4
    draw = ImageDraw.Draw(page)
    _draw_traces(draw, ecg, chosen, px_per_mm)
    _draw_png_text(draw, ecg, chosen, px_per_mm, header)
    out = io.BytesIO()
    page.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL, dpi=(dpi, dpi))
    return out.getvalue()
