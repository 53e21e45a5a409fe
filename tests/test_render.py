"""The paper-layout renderer: exact scale measured on the decoded pixels, privacy of the
header-less page, awkward recordings, and a vector PDF with the same geometry."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ContentStream

import model
from model.ecg import STANDARD_LEADS, Ecg, EcgMetadata
from model.render import GRID_BOTTOM_MM, GRID_LEFT_MM, GRID_TOP_MM, LAYOUTS, PAGE_HEIGHT_MM, Cell

FOOTER_TOP_MM = GRID_BOTTOM_MM + 1

RHYTHM = LAYOUTS["3x4+1"].cells[-1]
PT_PER_MM = 72 / 25.4


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def ink(png: bytes) -> np.ndarray:
    """True where the page is black: traces, pulses, ticks, text (the grid is pink)."""
    return (pixels(png) < 80).all(axis=2)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def centres(mask: np.ndarray) -> np.ndarray:
    return np.array([(a + b) / 2 for a, b in runs(mask)])


def ecg_with(leads: dict[str, np.ndarray], fs: float, metadata: EcgMetadata | None = None) -> Ecg:
    names = tuple(name for name in STANDARD_LEADS if name in leads)
    return Ecg(np.stack([leads[n] for n in names]), fs, names, metadata or EcgMetadata())


def square_wave_ecg(fs: float, seconds: float = 10.0) -> Ecg:
    """Lead II alternates 0 mV / 1 mV every second (high in odd seconds); others flat."""
    t = np.arange(round(seconds * fs)) / fs
    lead_ii = (np.floor(t + 1e-9) % 2 == 1).astype(np.float32)
    leads = {name: np.zeros_like(lead_ii) for name in STANDARD_LEADS}
    leads["II"] = lead_ii
    return ecg_with(leads, fs)


def cell_ink(
    mask: np.ndarray, cell: Cell, dpi: int, t_from: float | None = None, t_to: float | None = None
) -> int:
    """Ink pixels in the cell's +/-1 mV band between two times (default: its window,
    less 1 mm at each end for the separator tick), away from its label."""
    scale = dpi / 25.4
    t_from = cell.t_start + 0.04 if t_from is None else t_from
    t_to = cell.t_end - 0.04 if t_to is None else t_to
    x0, x1 = (cell.x_mm + (t - cell.t_start) * 25 for t in (t_from, t_to))
    rows = slice(int((cell.y_mm - 10) * scale), int((cell.y_mm + 10) * scale))
    return int(mask[rows, int(x0 * scale) : int(x1 * scale)].sum())


def cell_of(layout: str, lead: str, t: float) -> Cell:
    return next(c for c in LAYOUTS[layout].cells if c.lead == lead and c.t_start <= t < c.t_end)


@pytest.fixture(scope="module")
def ptbxl_ecg(shared_data) -> Ecg:
    return model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")


def patient(name: str, patient_id: str) -> EcgMetadata:
    return EcgMetadata(
        patient_name=name,
        patient_id=patient_id,
        patient_birth_date="19510203",
        patient_sex="F",
        acquisition_time=datetime(2024, 5, 6, 7, 8, 9),
        accession_number="ACC" + patient_id,
        device_manufacturer="GE",
        device_model="MAC 5500",
        institution_name="St Elsewhere",
    )


# ------------------------------------------------------------------------- scale


@pytest.mark.parametrize(
    "dpi, fs", [(200, 500.0), (200, 100.0), (200, 1000.0), (300, 250.0), (100, 360.0)]
)
def test_trace_scale_and_grid_are_exact_in_pixels(dpi: int, fs: float) -> None:
    scale = dpi / 25.4
    mask = ink(model.render_png(square_wave_ecg(fs), dpi=dpi))
    band = mask[int((RHYTHM.y_mm - 15) * scale) : int((RHYTHM.y_mm + 5) * scale)]
    top = int((RHYTHM.y_mm - 15) * scale)

    def level_row(t: float) -> float:
        column = round((RHYTHM.x_mm + t * 25) * scale)
        return top + centres(band[:, column]).mean()

    baseline, high = level_row(0.5), level_row(1.5)
    assert abs(baseline - RHYTHM.y_mm * scale) <= 1
    assert abs((baseline - high) - 10 * scale) <= 1  # 1 mV = 10 mm = 78.74 px at 200 DPI

    mid = band[round((RHYTHM.y_mm - 5) * scale) - top]
    mid[: int((RHYTHM.x_mm + 1) * scale)] = False  # leave out the calibration pulse
    edges = centres(mid)
    expected = np.array([(RHYTHM.x_mm + (k - 0.5 / fs) * 25) * scale for k in range(1, 10)])
    assert len(edges) == 9
    assert np.abs(edges - expected).max() <= 1  # 1 s = 25 mm = 196.85 px at 200 DPI

    page = pixels(model.render_png(square_wave_ecg(fs), dpi=dpi))
    grid_row = page[int((GRID_TOP_MM + 2) * scale)]  # above the first row: grid only
    major = centres((grid_row[:, 1] < 170) & (grid_row[:, 0] > 200))
    assert abs(major[0] - GRID_LEFT_MM * scale) <= 1
    assert np.abs(np.diff(major) - 5 * scale).max() <= 1  # 39.37 px at 200 DPI
    assert abs(np.diff(major).mean() - 5 * scale) < 0.05


def test_calibration_pulse_is_one_millivolt_by_200_ms() -> None:
    scale = 200 / 25.4
    mask = ink(model.render_png(square_wave_ecg(500.0)))
    row_top = int((RHYTHM.y_mm - 15) * scale)
    band = mask[row_top : int((RHYTHM.y_mm + 5) * scale)]
    foot, top = (centres(band[:, int((RHYTHM.x_mm - dx) * scale)]) for dx in (7.5, 4.0))
    assert len(foot) == 1 and len(top) == 1
    assert abs((foot[0] - top[0]) - 10 * scale) <= 1
    sides = centres(
        mask[
            int((RHYTHM.y_mm - 5) * scale), int(GRID_LEFT_MM * scale) : int(RHYTHM.x_mm * scale) - 2
        ]
    )
    assert len(sides) == 2 and abs((sides[1] - sides[0]) - 5 * scale) <= 1


def test_trace_baseline_lies_on_the_grid_line_it_should() -> None:
    """Grid and trace share one mm -> px mapping: the rhythm baseline (175 mm) is a major line."""
    scale = 200 / 25.4
    page = pixels(model.render_png(square_wave_ecg(500.0)))
    column = page[:, int((GRID_LEFT_MM + 0.5) * scale)]  # left of the pulse: grid only
    major_rows = centres((column[:, 1] < 170) & (column[:, 0] > 200))
    trace_rows = centres(
        ink(model.render_png(square_wave_ecg(500.0)))[:, int((RHYTHM.x_mm + 12.5) * scale)]
    )
    assert RHYTHM.y_mm % 5 == 0
    nearest_major = major_rows[np.abs(major_rows - RHYTHM.y_mm * scale).argmin()]
    assert np.abs(trace_rows - nearest_major).min() <= 1


# ------------------------------------------------------------------------- layout


def test_standard_layout_is_three_by_four_plus_rhythm_strip_in_time_order() -> None:
    cells = LAYOUTS["3x4+1"].cells
    grid = [[c.lead for c in cells if c.y_mm == y] for y in sorted({c.y_mm for c in cells})]
    assert grid == [
        ["I", "aVR", "V1", "V4"],
        ["II", "aVL", "V2", "V5"],
        ["III", "aVF", "V3", "V6"],
        ["II"],
    ]
    for cell in cells[:-1]:
        assert cell.t_end - cell.t_start == 2.5
        assert cell.x_mm == pytest.approx(20 + cell.t_start * 25)
    assert (RHYTHM.t_start, RHYTHM.t_end, RHYTHM.y_mm) == (0.0, 10.0, max(c.y_mm for c in cells))


@pytest.mark.parametrize("layout, rows, columns", [("6x2", 6, 2), ("12x1", 12, 1)])
def test_other_layouts_place_every_lead_once(layout: str, rows: int, columns: int) -> None:
    cells = LAYOUTS[layout].cells
    assert sorted(c.lead for c in cells) == sorted(STANDARD_LEADS)
    assert len({c.y_mm for c in cells}) == rows and len({c.x_mm for c in cells}) == columns


def test_columns_come_from_consecutive_time_windows() -> None:
    """A 1 mV plateau at 3.0-3.2 s in every lead shows in the 2.5-5 s column only."""
    t = np.arange(5000) / 500.0
    plateau = ((t >= 3.0) & (t < 3.2)).astype(np.float32)
    mask = ink(model.render_png(ecg_with({n: plateau for n in STANDARD_LEADS}, 500.0)))
    scale = 200 / 25.4
    found = {}
    for lead, t_start in (("I", 0.0), ("aVR", 2.5), ("V1", 5.0)):
        cell = cell_of("3x4+1", lead, t_start)
        left = int((cell.x_mm + 1) * scale)
        one_mv_row = mask[round((cell.y_mm - 10) * scale), left : int((cell.x_mm + 62) * scale)]
        found[lead] = centres(one_mv_row) + left
    assert len(found["I"]) == 0 and len(found["V1"]) == 0
    assert len(found["aVR"]) == 1
    assert abs(found["aVR"][0] - (20 + 3.1 * 25) * scale) <= 3  # centre of 3.0-3.2 s


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_real_record_draws_a_trace_in_every_cell(ptbxl_ecg: Ecg, layout: str) -> None:
    mask = ink(model.render_png(ptbxl_ecg, layout=layout))
    assert mask.shape == (1700, 2200)  # 11 x 8.5 in at 200 DPI
    for cell in LAYOUTS[layout].cells:
        assert cell_ink(mask, cell, 200) > 100, cell


# ------------------------------------------------------------------------- privacy


def test_header_less_png_carries_no_patient_data(ptbxl_ecg: Ecg) -> None:
    one = replace(ptbxl_ecg, metadata=patient("MUSTERMANN^ERIKA", "4711"))
    other = replace(ptbxl_ecg, metadata=patient("DOE^JOHN", "0815"))
    plain_one, plain_other = model.render_png(one), model.render_png(other)
    assert plain_one == plain_other
    assert b"MUSTERMANN" not in plain_one and b"4711" not in plain_one
    assert set(Image.open(io.BytesIO(plain_one)).info) <= {"dpi"}
    header_band = slice(0, int((GRID_TOP_MM - 1) * 200 / 25.4))
    assert not ink(plain_one)[header_band].any()

    with_header_one = model.render_png(one, header=True)
    assert ink(with_header_one)[header_band].sum() > 500
    assert with_header_one != model.render_png(other, header=True)
    below_header = slice(header_band.stop, None)
    assert np.array_equal(pixels(with_header_one)[below_header], pixels(plain_one)[below_header])


def test_pdf_header_shows_patient_only_when_asked(ptbxl_ecg: Ecg) -> None:
    one = replace(ptbxl_ecg, metadata=patient("MUSTERMANN^ERIKA", "4711"))
    other = replace(ptbxl_ecg, metadata=patient("DOE^JOHN", "0815"))
    shown = PdfReader(io.BytesIO(model.render_pdf(one))).pages[0].extract_text()
    assert "MUSTERMANN, ERIKA" in shown and "4711" in shown and "1951" in shown
    assert "St Elsewhere" in shown and "ACC4711" in shown
    hidden = model.render_pdf(one, header=False)
    assert hidden == model.render_pdf(other, header=False)
    assert "MUSTERMANN" not in PdfReader(io.BytesIO(hidden)).pages[0].extract_text()


# ------------------------------------------------------------------------- awkward input


def test_missing_leads_leave_labelled_blank_cells() -> None:
    fs, zeros = 500.0, np.zeros(5000, dtype=np.float32)
    limb_only = ecg_with({n: zeros for n in ("I", "II", "III", "aVR", "aVL", "aVF")}, fs)
    mask = ink(model.render_png(limb_only))
    for lead in ("V1", "V2", "V3", "V4", "V5", "V6"):
        cell = cell_of("3x4+1", lead, 5.0 if lead in ("V1", "V2", "V3") else 7.5)
        assert cell_ink(mask, cell, 200) == 0
        x_mm, y_mm = cell.label_xy_mm
        label_box = mask[
            int(y_mm * 200 / 25.4) : int((y_mm + 4) * 200 / 25.4),
            int(x_mm * 200 / 25.4) : int((x_mm + 8) * 200 / 25.4),
        ]
        assert label_box.sum() > 20
    assert cell_ink(mask, cell_of("3x4+1", "aVF", 2.5), 200) > 100


def test_short_recording_draws_what_exists() -> None:
    ecg = square_wave_ecg(500.0, seconds=4.0)
    mask = ink(model.render_png(ecg))
    assert cell_ink(mask, cell_of("3x4+1", "aVR", 2.5), 200, 2.6, 3.9) > 100
    assert cell_ink(mask, cell_of("3x4+1", "V1", 5.0), 200) == 0
    assert cell_ink(mask, RHYTHM, 200, 0.1, 3.9) > 100
    assert cell_ink(mask, RHYTHM, 200, 4.1, 9.9) == 0


def test_long_recording_shows_the_first_ten_seconds(shared_data) -> None:
    long = model.load(shared_data / "wfdb-samples" / "s0010_re")  # 38.4 s at 1 kHz, + Frank leads
    first_ten = Ecg(long.signal[:, :10_001], long.sampling_rate, long.lead_names)  # t = 0..10 s
    above_footer = slice(0, int(FOOTER_TOP_MM * 200 / 25.4))
    assert np.array_equal(
        ink(model.render_png(long))[above_footer], ink(model.render_png(first_ten))[above_footer]
    )
    footer = PdfReader(io.BytesIO(model.render_pdf(long))).pages[0].extract_text()
    assert "first 10 s of 38.4 s" in footer and "Not on this layout: X, Y, Z" in footer


def test_nan_samples_are_gaps_not_lines() -> None:
    ecg = square_wave_ecg(500.0)
    signal = ecg.signal.copy()
    signal[ecg.lead_names.index("II"), 2000:2500] = np.nan  # 4.0-5.0 s
    mask = ink(model.render_png(replace(ecg, signal=signal)))
    assert cell_ink(mask, RHYTHM, 200, 4.05, 4.95) == 0
    assert cell_ink(mask, RHYTHM, 200, 3.1, 3.9) > 100
    assert cell_ink(mask, RHYTHM, 200, 5.1, 5.9) > 100


def test_large_amplitudes_are_clipped_to_the_row_band() -> None:
    t = np.arange(5000) / 500.0
    spikes = np.where((t % 1.0) < 0.05, 8.0, -8.0).astype(np.float32)  # +/-8 mV
    mask = ink(model.render_png(ecg_with({"I": spikes}, 500.0)))
    cell, scale = cell_of("3x4+1", "I", 0.0), 200 / 25.4
    band_top, band_bottom = cell.band_mm
    columns = slice(int((cell.x_mm + 1) * scale), int((cell.x_mm + 60) * scale))
    traced_rows = np.flatnonzero(
        mask[: int(cell_of("3x4+1", "II", 0).label_xy_mm[1] * scale), columns].any(axis=1)
    )
    assert abs(traced_rows.min() - band_top * scale) <= 2
    assert abs(traced_rows.max() - band_bottom * scale) <= 2


def test_bad_arguments_are_named() -> None:
    ecg = square_wave_ecg(500.0)
    with pytest.raises(ValueError, match="dpi"):
        model.render_png(ecg, dpi=0)
    with pytest.raises(ValueError, match="layout '4x3'.*3x4\\+1"):
        model.render_png(ecg, layout="4x3")
    with pytest.raises(ValueError, match="layout"):
        model.render_pdf(ecg, layout="4x3")


def test_vendor_dicom_renders_with_its_filter_in_the_footer(shared_data) -> None:
    ecg = model.load(shared_data / "vendor" / "dicom" / "guangxi_teaching_sinus_rhythm.dcm")
    text = PdfReader(io.BytesIO(model.render_pdf(ecg))).pages[0].extract_text()
    assert "25 mm/s" in text and "10 mm/mV" in text and f"Filter: {ecg.metadata.filters}" in text
    mask = ink(model.render_png(ecg))
    assert all(cell_ink(mask, cell, 200) > 100 for cell in LAYOUTS["3x4+1"].cells)


# ------------------------------------------------------------------------- PDF


def pdf_path_points(pdf: bytes, page: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) page mm from the top-left of every path point, and each point's operator
    (b"m" or b"l"), with the content stream's transformations (q, Q, cm) applied."""
    reader = PdfReader(io.BytesIO(pdf))
    operations = ContentStream(reader.pages[page].get_contents(), reader).operations
    ctm, saved, points, ops = np.eye(3), [], [], []
    for args, op in operations:
        if op == b"q":
            saved.append(ctm)
        elif op == b"Q":
            ctm = saved.pop()
        elif op == b"cm":
            a, b, c, d, e, f = (float(v) for v in args)
            ctm = np.array([[a, b, 0], [c, d, 0], [e, f, 1]]) @ ctm
        elif op in (b"m", b"l"):
            points.append(np.array([float(args[0]), float(args[1]), 1.0]) @ ctm)
            ops.append(op)
    xy = np.array(points)[:, :2]
    mm = np.column_stack((xy[:, 0], PAGE_HEIGHT_MM * PT_PER_MM - xy[:, 1])) / PT_PER_MM
    return mm, np.array(ops)


def test_pdf_is_one_vector_page_with_the_png_geometry() -> None:
    pdf = model.render_pdf(square_wave_ecg(500.0), header=False)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    page = reader.pages[0]
    assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx((792, 612))
    assert "/XObject" not in page["/Resources"]  # no embedded images, only paths and text
    operators = {op for _, op in ContentStream(page.get_contents(), reader).operations}
    assert {b"m", b"l", b"S", b"Tj"} <= operators
    points, ops = pdf_path_points(pdf)
    for level_mm in (RHYTHM.y_mm, RHYTHM.y_mm - 10):  # 0 mV and 1 mV of the rhythm strip
        on_level = np.isclose(points[:, 1], level_mm, atol=1e-3)
        assert on_level.sum() > 10  # simplified: a flat run keeps its ends
        assert (points[on_level, 0] > RHYTHM.x_mm + 240).any()  # up to the strip's end
    assert np.isclose(points[ops == b"m", 0], GRID_LEFT_MM + 5, atol=1e-3).any()
    text = page.extract_text()
    assert all(label in text for label in ("aVR", "V6", "25 mm/s"))


def pdf_trace_points(pdf: bytes) -> np.ndarray:
    return pdf_path_points(pdf)[0]


@pytest.mark.parametrize("fs", [1000.0, 2000.0])
def test_pdf_decimation_keeps_one_sample_spikes_at_full_height(fs: float) -> None:
    """A pacer spike is one sample wide: thinning a fast recording must not clip it."""
    n = round(10 * fs)
    lead_ii, lead_v1 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    up, down = round(1.2345 * fs), round(6.2345 * fs)
    lead_ii[up] = 1.8  # mV, in the II cell and the rhythm strip
    lead_v1[down] = -1.7
    points = pdf_trace_points(
        model.render_pdf(ecg_with({"II": lead_ii, "V1": lead_v1}, fs), header=False)
    )
    for lead, index, mv in (("II", up, 1.8), ("V1", down, -1.7)):
        t = index / fs
        cell = cell_of("3x4+1", lead, t)
        x_mm = cell.x_mm + (t - cell.t_start) * 25
        inside = points[
            (points[:, 0] > cell.x_mm + 1)
            & (points[:, 0] < cell.x_mm + 60)
            & (np.abs(points[:, 1] - cell.y_mm) < 19)
        ]
        peak = inside[np.argmax(np.abs(inside[:, 1] - cell.y_mm))]
        assert peak == pytest.approx((x_mm, cell.y_mm - mv * 10), abs=0.005)  # 0.01 mm units
    trace = points[np.abs(points[:, 1] - RHYTHM.y_mm) < 19]
    assert len(trace) < 0.6 * n  # it was thinned: about 2 of every fs / 250 samples are kept
