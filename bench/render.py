"""Renderer benchmark: model.render_png against matplotlib drawing the SAME page, same run.

Both draw the 3x4+1 page of model/render.py (its layout data and page constants: 11 x 8.5 in,
1/5 mm grid, calibration pulses, separator ticks, labels, footer, traces) at the same DPI
and write a PNG with the same zlib level. Two matplotlib baselines (Agg, no pyplot):
  * "new figure": a figure is built for every page, as a straightforward script would;
  * "reused figure": grid, pulses and labels are drawn once; per page only the 13 trace
    lines and the footer are replaced (the fastest fair use of matplotlib we know).
Everything runs pinned to one CPU with BLAS/OpenMP threads set to 1. The main figure is CPU
time of this process per page (time.process_time): the development machines are shared, and
wall-clock time there measures the neighbours as much as the renderer; wall-clock medians are
printed beside it. Records: PTB-XL records500, LUDB and the vendor DICOM, decoded with
model.load before timing.

    .venv/bin/python bench/render.py [--ptbxl 20] [--ludb 20] [--rounds 2] [--dpi 200]

Goals: ours <= 40 ms median per PNG at 200 DPI, and >= 10x faster than matplotlib.

The vector PDF (model.render_pdf, the report page: header, measurements, statements,
engine, notes, traces) is timed against the renderer it replaced, kept here as it was on
2026-12-06 ("before": the traces page, coordinates as 1/1000 pt decimals, 0.1 mm min/max
columns, zlib level 1), on the same records in the same run: size (median and largest,
and how many fit one HL7 OBX-5, 49,152 bytes) and CPU time. A last table shows what the
page stream's zlib level costs and saves.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import io
import platform
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from reportlab.lib.colors import Color
from reportlab.pdfgen import canvas as pdf_canvas

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name

import model
from model import render
from model.ecg import Ecg
from model.render import pdf as render_pdf_module
from model.render import png as render_png_module
from model.render.page import GRID_WEIGHTS
from model.render.pdf_paths import decimated
from model.report import Report

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
LAYOUT = render.LAYOUTS[render.DEFAULT_LAYOUT]
PT_PER_MM = 72 / 25.4
MPL_PNG_OPTIONS = {"compress_level": render_png_module.PNG_COMPRESS_LEVEL}
HL7_ED_BYTES = 65536 * 3 // 4  # a PDF whose base64 fits one OBX-5 ED.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ptbxl", type=int, default=20, help="PTB-XL records500 records")
    parser.add_argument("--ludb", type=int, default=20, help="LUDB records")
    parser.add_argument("--rounds", type=int, default=2, help="passes over all records")
    parser.add_argument("--dpi", type=int, default=200)
    args = parser.parse_args()
    cpu = pin_to_one_cpu()
    ecgs = load_records(args.ptbxl, args.ludb)
    reused = ReusedMatplotlibPage(args.dpi)
    contenders: dict[str, Callable[[Ecg], bytes]] = {
        "model.render_png (numpy + Pillow)": lambda ecg: model.render_png(ecg, dpi=args.dpi),
        "matplotlib, new figure per page": lambda ecg: matplotlib_page(ecg, args.dpi),
        "matplotlib, figure reused": reused.render,
    }
    timings = time_interleaved(contenders, ecgs, args.rounds)
    reports = {id(ecg): model.analyze(ecg) for ecg in ecgs}
    pdf_contenders: dict[str, Callable[[Ecg], bytes]] = {
        "model.render_pdf, report page (0.01 mm integer paths, Douglas-Peucker 0.02 mm, "
        "zlib 3)": lambda ecg: model.render_pdf(ecg, report=reports[id(ecg)]),
        "the renderer before, traces page (1/1000 pt decimals, zlib 1)": before_pdf,
    }
    pdf_timings = time_interleaved(pdf_contenders, ecgs, args.rounds)
    print_header(cpu, len(ecgs), args)
    print_speed_table(timings)
    print_pdf_table(pdf_timings, pdf_contenders, ecgs)
    print_pdf_zlib_table(ecgs, reports)
    print_compression_table(ecgs, args.dpi)
    return 0


def pin_to_one_cpu() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def load_records(n_ptbxl: int, n_ludb: int) -> list[Ecg]:
    ptbxl = sorted((DATA / "ptbxl" / "records500" / "00000").glob("*_hr.hea"))[:n_ptbxl]
    ludb = sorted((DATA / "ludb" / "data").glob("*.hea"), key=lambda p: int(p.stem))[:n_ludb]
    paths = [p.with_suffix("") for p in ptbxl + ludb]
    paths += sorted((DATA / "vendor" / "dicom").glob("*.dcm"))
    if not paths:
        sys.exit(f"no records found under {DATA}")
    return [model.load(path) for path in paths]


def timed_ms(call: Callable[[], object]) -> tuple[float, float]:
    """(CPU ms, wall ms) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    call()
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


def time_interleaved(
    contenders: dict[str, Callable[[Ecg], bytes]], ecgs: list[Ecg], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """Each record by each contender in turn, so drifts in machine load hit all alike.
    One untimed warm-up page each: our cached grid and matplotlib's font cache are built there."""
    for render_page in contenders.values():
        render_page(ecgs[0])
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for ecg in ecgs:
            for name, render_page in contenders.items():
                timings[name].append(timed_ms(partial(render_page, ecg)))
    return timings


# --------------------------------------------------------------- the matplotlib page


def _grid_segments(step: float) -> list[list[tuple[float, float]]]:
    xs = np.arange(render.GRID_LEFT_MM, render.GRID_RIGHT_MM + 1e-9, step)
    ys = np.arange(render.GRID_TOP_MM, render.GRID_BOTTOM_MM + 1e-9, step)
    return [[(x, render.GRID_TOP_MM), (x, render.GRID_BOTTOM_MM)] for x in xs] + [
        [(render.GRID_LEFT_MM, y), (render.GRID_RIGHT_MM, y)] for y in ys
    ]


def _static_page(dpi: int) -> tuple[Figure, object]:
    """Figure in page millimetres (y down) with everything that does not depend on the ECG."""
    figure = Figure(figsize=(render.PAGE_WIDTH_MM / 25.4, render.PAGE_HEIGHT_MM / 25.4), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, render.PAGE_WIDTH_MM)
    axes.set_ylim(render.PAGE_HEIGHT_MM, 0)
    axes.axis("off")
    for step, width_mm, rgb in (
        (1.0, render.MINOR_LINE_MM, render.MINOR_RGB),
        (5.0, render.MAJOR_LINE_MM, render.MAJOR_RGB),
    ):
        axes.add_collection(
            LineCollection(
                _grid_segments(step), colors=[np.array(rgb) / 255], linewidths=width_mm * PT_PER_MM
            )
        )
    trace_pt = render.TRACE_LINE_MM * PT_PER_MM
    for baseline in LAYOUT.baselines_mm:
        xs, ys = zip(*render.cal_pulse_mm(baseline))
        axes.plot(xs, ys, color="black", linewidth=trace_pt)
    for cell in LAYOUT.separators:
        axes.plot(
            [cell.x_mm, cell.x_mm],
            [cell.y_mm - 2.5, cell.y_mm + 2.5],
            color="black",
            linewidth=trace_pt,
        )
    for cell in LAYOUT.cells:
        x_mm, y_mm = cell.label_xy_mm
        axes.text(x_mm, y_mm, cell.lead, fontsize=render.LABEL_SIZE_MM * PT_PER_MM, va="top")
    return figure, axes


def _trace_mm(ecg: Ecg, cell: render.Cell) -> tuple[np.ndarray, np.ndarray]:
    """The cell's samples in page mm; NaN stays NaN, which matplotlib draws as a gap."""
    if not ecg.has_lead(cell.lead):
        return np.empty(0), np.empty(0)
    first = int(np.ceil(cell.t_start * ecg.sampling_rate))
    last = min(int(np.floor(cell.t_end * ecg.sampling_rate)), ecg.n_samples - 1)
    index = np.arange(first, last + 1)
    band_top, band_bottom = cell.band_mm
    x = cell.x_mm + (index / ecg.sampling_rate - cell.t_start) * render.MM_PER_S
    y = np.clip(
        cell.y_mm - ecg.lead(cell.lead)[first : last + 1] * render.MM_PER_MV, band_top, band_bottom
    )
    return x, y


def _draw_ecg(axes, ecg: Ecg) -> list:
    trace_pt = render.TRACE_LINE_MM * PT_PER_MM
    artists = [
        axes.plot(*_trace_mm(ecg, cell), color="black", linewidth=trace_pt)[0]
        for cell in LAYOUT.cells
    ]
    artists.append(
        axes.text(
            render.GRID_LEFT_MM,
            render.FOOTER_BASELINE_MM,
            render.footer_text(ecg, LAYOUT),
            fontsize=render.TEXT_SIZE_MM * PT_PER_MM,
        )
    )
    return artists


def _png(figure: Figure, dpi: int) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=dpi, pil_kwargs=MPL_PNG_OPTIONS)
    return out.getvalue()


def matplotlib_page(ecg: Ecg, dpi: int) -> bytes:
    figure, axes = _static_page(dpi)
    _draw_ecg(axes, ecg)
    return _png(figure, dpi)


class ReusedMatplotlibPage:
    """One figure for all pages: the static part stays, each page's artists are removed."""

    def __init__(self, dpi: int) -> None:
        self.dpi = dpi
        self.figure, self.axes = _static_page(dpi)

    def render(self, ecg: Ecg) -> bytes:
        artists = _draw_ecg(self.axes, ecg)
        try:
            return _png(self.figure, self.dpi)
        finally:
            for artist in artists:
                artist.remove()


# --------------------------------------------------------------- the PDF renderer before


def before_pdf(ecg: Ecg) -> bytes:
    """model.render_pdf as it was before the report page (git 476fa97): the same grid,
    pulses, ticks, traces and footer, every coordinate a seven-digit decimal in points."""
    out = io.BytesIO()
    size_pt = (render.PAGE_WIDTH_MM * PT_PER_MM, render.PAGE_HEIGHT_MM * PT_PER_MM)
    page = pdf_canvas.Canvas(out, pagesize=size_pt, invariant=True, pageCompression=0)
    page._doc.defaultStreamFilters = [_Level1Flate()]
    page.addLiteral(_before_grid_ops())
    page.setStrokeColor(Color(0, 0, 0))
    page.setLineWidth(render.TRACE_LINE_MM * PT_PER_MM)
    page.setLineJoin(1)
    page.setLineCap(1)
    lines = [render.cal_pulse_mm(y) for y in LAYOUT.baselines_mm]
    lines += [render.separator_mm(cell) for cell in LAYOUT.separators]
    per_column = int(0.1 / render.MM_PER_S * ecg.sampling_rate + 1e-9)
    lines += [
        decimated(segment, per_column)
        for cell in LAYOUT.cells
        for segment in render.cell_segments_mm(ecg, cell)
    ]
    page.addLiteral("\n".join(_fixed_point_ops(np.asarray(line)) for line in lines))
    page.setFont("Helvetica-Bold", render.LABEL_SIZE_MM * PT_PER_MM)
    for cell in LAYOUT.cells:
        x_mm, y_mm = cell.label_xy_mm
        page.drawString(*render.pdf_xy(x_mm, y_mm + render.LABEL_SIZE_MM), cell.lead)
    page.setFont("Helvetica", render.TEXT_SIZE_MM * PT_PER_MM)
    footer_xy = render.pdf_xy(render.GRID_LEFT_MM, render.FOOTER_BASELINE_MM)
    page.drawString(*footer_xy, render.footer_text(ecg, LAYOUT))
    page.showPage()
    page.save()
    return out.getvalue()


@lru_cache(maxsize=1)
def _before_grid_ops() -> str:
    """The grid, built once as the renderer before cached it."""
    grid = []
    for step, width_mm, rgb in GRID_WEIGHTS:
        colour = " ".join(f"{channel / 255.0:.4f}" for channel in rgb)
        grid.append(f"{colour} RG {width_mm * PT_PER_MM:.4f} w")
        grid += [_fixed_point_ops(np.array(line)) for line in _grid_segments(step)]
    return "\n".join(grid)


class _Level1Flate:
    pdfname = "FlateDecode"

    def encode(self, content: str | bytes) -> bytes:
        return zlib.compress(content.encode() if isinstance(content, str) else content, 1)


def _fixed_point_ops(points_mm: np.ndarray) -> str:
    """'x y m', 'x y l'... 'S' with every coordinate as ddd.ddd points, the ASCII made by
    numpy arithmetic as the renderer before did."""
    if len(points_mm) == 1:
        points_mm = np.vstack((points_mm, points_mm))
    x = _fixed_point(points_mm[:, 0] * PT_PER_MM)
    y = _fixed_point((render.PAGE_HEIGHT_MM - points_mm[:, 1]) * PT_PER_MM)
    ops = np.full((len(points_mm), 1), ord("l"), dtype=np.uint8)
    ops[0] = ord("m")
    space = np.full((len(points_mm), 1), ord(" "), dtype=np.uint8)
    newline = np.full((len(points_mm), 1), ord("\n"), dtype=np.uint8)
    return np.hstack((x, space, y, space, ops, newline)).tobytes().decode("ascii") + "S"


def _fixed_point(values_pt: np.ndarray) -> np.ndarray:
    """(n, 7) ASCII bytes of each value as ddd.ddd; values must lie in [0, 1000) pt."""
    scaled = np.rint(values_pt * 1000).astype(np.int64)
    digits = (scaled[:, None] // 10 ** np.arange(5, -1, -1) % 10 + ord("0")).astype(np.uint8)
    point = np.full((len(values_pt), 1), ord("."), dtype=np.uint8)
    return np.hstack((digits[:, :3], point, digits[:, 3:]))


# --------------------------------------------------------------- report


def print_header(cpu: int, n_records: int, args: argparse.Namespace) -> None:
    print(f"# Renderer benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(
        f"- machine: {cpu_name()}, pinned to CPU {cpu} (1 core), Python {platform.python_version()}"
    )
    print(
        f"- pages: {n_records} records ({args.ptbxl} PTB-XL, {args.ludb} LUDB, vendor DICOM) "
        f"x {args.rounds} rounds, 3x4+1 layout, {args.dpi} DPI, PNG zlib level "
        f"{render_png_module.PNG_COMPRESS_LEVEL} for all\n"
    )


def print_speed_table(timings: dict[str, list[tuple[float, float]]]) -> None:
    ours = float(np.median([cpu for cpu, _ in next(iter(timings.values()))]))
    print(
        "| renderer | median CPU ms/page | p95 CPU ms/page | median wall ms/page | ours faster by |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, values in timings.items():
        cpu, wall = np.array(values).T
        print(
            f"| {name} | {np.median(cpu):.1f} | {np.percentile(cpu, 95):.1f} | "
            f"{np.median(wall):.1f} | {np.median(cpu) / ours:.1f}x |"
        )
    print()


def print_pdf_table(
    timings: dict[str, list[tuple[float, float]]],
    contenders: dict[str, Callable[[Ecg], bytes]],
    ecgs: list[Ecg],
) -> None:
    print(
        "| PDF renderer (vector, header on) | median CPU ms/page | p95 CPU ms/page "
        "| median wall ms/page | median KiB/page | largest KiB | fit one HL7 OBX-5 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, values in timings.items():
        cpu, wall = np.array(values).T
        sizes = [len(contenders[name](ecg)) for ecg in ecgs]
        fit = sum(size <= HL7_ED_BYTES for size in sizes)
        print(
            f"| {name} | {np.median(cpu):.1f} | {np.percentile(cpu, 95):.1f} | "
            f"{np.median(wall):.1f} | {np.median(sizes) / 1024:.0f} | {max(sizes) / 1024:.0f} | "
            f"{fit}/{len(sizes)} |"
        )
    print()


def print_pdf_zlib_table(ecgs: list[Ecg], reports: dict[int, Report]) -> None:
    """Why the PDF stream's zlib level is what it is: time and size per level, same pages."""
    print("| model.render_pdf zlib level | median CPU ms/page | median KiB/page |")
    print("|---:|---:|---:|")
    chosen = render_pdf_module.PDF_ZLIB_LEVEL
    try:
        for level in (1, 3, 6, 9):
            render_pdf_module.PDF_ZLIB_LEVEL = level
            ms, sizes = [], []
            for ecg in ecgs:
                start = time.process_time()
                sizes.append(len(model.render_pdf(ecg, report=reports[id(ecg)])) / 1024)
                ms.append((time.process_time() - start) * 1000)
            mark = " (used)" if level == chosen else ""
            print(f"| {level}{mark} | {np.median(ms):.1f} | {np.median(sizes):.0f} |")
    finally:
        render_pdf_module.PDF_ZLIB_LEVEL = chosen
    print()


def print_compression_table(ecgs: list[Ecg], dpi: int) -> None:
    """Why the renderer's zlib level is what it is: time and size per level, same pages."""
    print("| model.render_png zlib level | median CPU ms/page | median KiB/page |")
    print("|---:|---:|---:|")
    chosen = render_png_module.PNG_COMPRESS_LEVEL
    try:
        for level in (0, 1, 3, 6, 9):
            render_png_module.PNG_COMPRESS_LEVEL = level
            ms, sizes = [], []
            for ecg in ecgs:
                start = time.process_time()
                sizes.append(len(model.render_png(ecg, dpi=dpi)) / 1024)
                ms.append((time.process_time() - start) * 1000)
            mark = " (used)" if level == chosen else ""
            print(f"| {level}{mark} | {np.median(ms):.1f} | {np.median(sizes):.0f} |")
    finally:
        render_png_module.PNG_COMPRESS_LEVEL = chosen


if __name__ == "__main__":
    raise SystemExit(main())
