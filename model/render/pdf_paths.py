"""Compact vector paths for the PDF page: what makes a 10 s 12-lead page about 26 KiB
instead of 121 (bench/render.py), while every point stays within 0.025 mm of the sample
it draws.

Three steps:
  * columns: per 0.1 mm of paper the samples with the lowest and highest value (in time
    order), so a 1000 Hz+ recording costs no more than the page shows, and every peak and
    pacer spike keeps its full amplitude and exact position;
  * simplification (Ramer-Douglas-Peucker): a point that lies within 0.02 mm of the line
    through the points kept around it adds nothing on paper (a 600 dpi printer dot is
    0.042 mm, the trace 0.3 mm wide) and is dropped; flat baselines and straight slopes,
    most of an ECG, shrink to a few points;
  * integer coordinates in 0.01 mm units, relative to each cell's origin (one `cm` per
    cell), so a point is written as two short integers (`6250 -1234 l`) instead of two
    seven-digit decimals.
No library here does Douglas-Peucker on numpy arrays without a geometry stack (shapely,
GEOS) we would install for this alone; the level-by-level form below does every open
interval of the page in one numpy pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from model.ecg import Ecg
from model.render.page import MM_PER_S, PAGE_HEIGHT_MM, Cell, cell_segments_mm

UNIT_MM = 0.01  # path coordinates are whole multiples of this
SIMPLIFY_TOLERANCE_MM = 0.02
SEED_MM = 2.5  # 0.1 s of paper
COLUMN_MM = 0.1
PT_PER_MM = 72.0 / 25.4


def page_units_matrix() -> str:
    """The `cm` that makes one unit UNIT_MM, with y growing down from the page's top."""
    scale = UNIT_MM * PT_PER_MM
    return f"{scale:.9f} 0 0 {-scale:.9f} 0 {PAGE_HEIGHT_MM * PT_PER_MM:.4f} cm"


def units(value_mm: float) -> int:
    return round(value_mm / UNIT_MM)


def to_units(points_mm: np.ndarray | list[tuple[float, float]]) -> np.ndarray:
    return np.rint(np.asarray(points_mm, dtype=np.float64) / UNIT_MM).astype(np.int64)


def polyline_ops(points_units: np.ndarray) -> str:
    """'x y m', then 'x y l' per point, then 'S' (a lone point is drawn as a dot)."""
    if len(points_units) == 1:
        points_units = np.vstack((points_units, points_units))
    x, y = points_units[:, 0].tolist(), points_units[:, 1].tolist()
    body = "\n".join(map("{} {} l".format, x[1:], y[1:]))
    return f"{x[0]} {y[0]} m\n{body} S"


def traces_ops(ecg: Ecg, cells: tuple[Cell, ...]) -> str:
    """Every cell's trace: per cell a translation to its origin, then its polylines."""
    ops = []
    for cell, polylines in zip(cells, cell_polylines(ecg, cells), strict=True):
        if not polylines:
            continue
        origin = np.array([units(cell.x_mm), units(cell.y_mm)])
        paths = [polyline_ops(to_units(points) - origin) for points in polylines]
        ops.append(f"q 1 0 0 1 {origin[0]} {origin[1]} cm\n" + "\n".join(paths) + "\nQ")
    return "\n".join(ops)


def cell_polylines(ecg: Ecg, cells: tuple[Cell, ...]) -> list[list[np.ndarray]]:
    """Per cell, its trace's polylines in page mm, decimated to COLUMN_MM and simplified
    to SIMPLIFY_TOLERANCE_MM (the PDF's and the web page's SVG's traces)."""
    samples_per_column = int(COLUMN_MM / MM_PER_S * ecg.sampling_rate + 1e-9)
    per_cell = [
        [decimated(segment, samples_per_column) for segment in cell_segments_mm(ecg, cell)]
        for cell in cells
    ]
    segments = [segment for cell_segments in per_cell for segment in cell_segments]
    kept = simplified(segments, SIMPLIFY_TOLERANCE_MM) if segments else iter(())
    return [[next(kept) for _ in cell_segments] for cell_segments in per_cell]


def decimated(points_mm: np.ndarray, samples_per_column: int) -> np.ndarray:
    """The points that draw the same trace at COLUMN_MM resolution: per group of
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


def simplified(segments: list[np.ndarray], tolerance_mm: float) -> Iterator[np.ndarray]:
    """Each segment with the points Douglas-Peucker keeps at this tolerance, in order.

    All segments are worked on together: per pass, every interval between kept points
    that still has a point farther than the tolerance from its chord gets its farthest
    point kept. Segment ends, and each SEED_MM stretch's lowest and highest point, are
    kept from the start: mostly peaks the algorithm keeps anyway, and they about halve
    the number of passes for ~1% more points (the bound on every point is unchanged).
    """
    points = np.concatenate(segments)
    x, y = points[:, 0].copy(), points[:, 1].copy()
    bounds = np.cumsum([0] + [len(segment) for segment in segments])
    keep = np.zeros(len(points), dtype=bool)
    keep[bounds[:-1]] = True
    keep[bounds[1:] - 1] = True
    segment_of = np.repeat(np.arange(len(segments)), np.diff(bounds))
    stretch = np.floor(x / SEED_MM).astype(np.int64) + segment_of * (1 << 20)
    for reduce in (np.minimum, np.maximum):
        keep[_first_per_run(stretch, y, reduce)] = True
    open_points = np.flatnonzero(~keep)
    while open_points.size:
        kept = np.flatnonzero(keep)
        slot = np.searchsorted(kept, open_points)  # kept[slot - 1] < point < kept[slot]
        start, end = kept[slot - 1], kept[slot]
        dx, dy = x[end] - x[start], y[end] - y[start]  # x grows within a segment: no 0 chord
        ox, oy = x[open_points] - x[start], y[open_points] - y[start]
        distance = np.abs(ox * dy - oy * dx) / np.hypot(dx, dy)
        interval = np.cumsum(np.diff(slot, prepend=-1) != 0) - 1
        chosen = _first_per_run(slot, distance, np.maximum)
        splitting = (distance[chosen] > tolerance_mm)[interval]
        keep[open_points[chosen[distance[chosen] > tolerance_mm]]] = True
        open_points = open_points[splitting & ~keep[open_points]]
    for first, last in itertools.pairwise(bounds):
        yield points[first:last][keep[first:last]]


def _first_per_run(runs: np.ndarray, values: np.ndarray, reduce: np.ufunc) -> np.ndarray:
    """Per run of equal consecutive `runs` labels, the index of its first value equal to
    the run's reduce (minimum or maximum)."""
    new_run = np.diff(runs, prepend=runs[0] - 1) != 0
    run_of = np.cumsum(new_run) - 1
    best = reduce.reduceat(values, np.flatnonzero(new_run))
    hits = np.flatnonzero(values == best[run_of])
    return hits[np.diff(run_of[hits], prepend=-1) != 0]
