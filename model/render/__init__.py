"""Paper-layout ECG pages: a fast raster PNG (for models and viewers: no patient data unless
asked) and the report as a compact vector PDF (for people and the EHR).

page.py holds the geometry both share; png.py and pdf.py draw it; pdf_paths.py makes the
PDF's traces small.
"""

from model.render.page import (
    DEFAULT_LAYOUT,
    FOOTER_BASELINE_MM,
    GRID_BOTTOM_MM,
    GRID_LEFT_MM,
    GRID_RIGHT_MM,
    GRID_TOP_MM,
    INK_RGB,
    LABEL_SIZE_MM,
    LAYOUTS,
    MAJOR_LINE_MM,
    MAJOR_RGB,
    MINOR_LINE_MM,
    MINOR_RGB,
    MM_PER_MV,
    MM_PER_S,
    PAGE_HEIGHT_MM,
    PAGE_WIDTH_MM,
    TEXT_SIZE_MM,
    TRACE_LINE_MM,
    Cell,
    Layout,
    cal_pulse_mm,
    cell_segments_mm,
    footer_text,
    separator_mm,
)
from model.render.pdf import pdf_colour, pdf_xy, render_pdf
from model.render.png import render_png

__all__ = [
    "DEFAULT_LAYOUT",
    "FOOTER_BASELINE_MM",
    "GRID_BOTTOM_MM",
    "GRID_LEFT_MM",
    "GRID_RIGHT_MM",
    "GRID_TOP_MM",
    "INK_RGB",
    "LABEL_SIZE_MM",
    "LAYOUTS",
    "MAJOR_LINE_MM",
    "MAJOR_RGB",
    "MINOR_LINE_MM",
    "MINOR_RGB",
    "MM_PER_MV",
    "MM_PER_S",
    "PAGE_HEIGHT_MM",
    "PAGE_WIDTH_MM",
    "TEXT_SIZE_MM",
    "TRACE_LINE_MM",
    "Cell",
    "Layout",
    "cal_pulse_mm",
    "cell_segments_mm",
    "footer_text",
    "pdf_colour",
    "pdf_xy",
    "render_pdf",
    "render_png",
    "separator_mm",
]
