"""The PDF the EHR shows is the report, as a cart prints it: read back as text (pypdf) and
as pixels (pdftoppm); compact enough for one HL7 field; exact to the samples it draws;
and the pages a model sees carry none of the patient data the printout does."""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from example_reports import afib_report, confirmed, critical_afib_report
from PIL import Image
from pypdf import PdfReader
from test_render import RHYTHM, ink, patient, pdf_path_points

import model
from model.ecg import Ecg
from model.render.page import GRID_TOP_MM
from model.render.pdf_paths import SIMPLIFY_TOLERANCE_MM, UNIT_MM
from model.report import ComparisonStatement, Statement, WithdrawnFinding
from model.report_text import comparison_line
from model.vlm.engine import render_page

HL7_ED_LIMIT_BYTES = 65536 * 3 // 4  # one OBX-5 ED.5 (TX, 65536 characters) of base64


@pytest.fixture(scope="module")
def ptbxl_ecg(shared_data: Path) -> Ecg:
    ecg = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    return replace(ecg, metadata=patient("MUSTERMANN^ERIKA", "4711"))


def pdf_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def with_notes(warnings: list[str]):
    return afib_report().model_copy(update={"warnings": warnings})


def test_the_printout_carries_header_measurements_status_interpretation_and_engine(
    ptbxl_ecg: Ecg,
) -> None:
    report = with_notes(["lead V3 not used: flat line"])
    [text] = pdf_text(model.render_pdf(ptbxl_ecg, report=report))
    for expected in (
        "MUSTERMANN, ERIKA",
        "ID: 4711",
        "Born: 19510203",
        "Acquired: 2024-05-06 07:08:09",
        "Accession: ACC4711",
        "Device: GE MAC 5500",
        "Institution: St Elsewhere",
        "Vent. rate",
        "112 bpm",
        "96 ms",
        "402/550 ms",
        "n/a -12 48",  # P axis could not be measured: said so, never a zero
        "UNCONFIRMED preliminary machine report",
        "Atrial fibrillation with rapid ventricular response. Long QT.",
        "Atrial fibrillation (AFIB)",
        "Long QT interval (LNGQT)",
        "Non-specific ischemic changes (ISC_)",
        "engine measure test",
        "Technical notes: lead V3 not used: flat line.",
        "25 mm/s",
    ):
        assert expected in text, expected
    assert "PR interval" in text and "PR interval n/a" in " ".join(text.split())


def test_a_correction_says_so(ptbxl_ecg: Ecg) -> None:
    report = afib_report().model_copy(update={"is_correction": True})
    [text] = pdf_text(model.render_pdf(ptbxl_ecg, report=report))
    assert "CORRECTED UNCONFIRMED" in text


@pytest.mark.parametrize(
    ("status", "says"),
    [("final", "FINAL report"), ("corrected", "CORRECTED final report"), ("amended", "AMENDED")],
)
def test_a_confirmed_report_says_its_status_and_who_confirmed_it(
    ptbxl_ecg: Ecg, status: str, says: str
) -> None:
    [text] = pdf_text(model.render_pdf(ptbxl_ecg, report=confirmed(afib_report(), status)))
    joined = " ".join(text.split())
    assert f"{says}" in joined and "UNCONFIRMED" not in joined
    assert "confirmed by Dr Alice M Jones (dr.jones) on 2026-12-06 21:30 UTC" in joined


def test_a_corrected_printout_lists_the_statements_withdrawn(ptbxl_ecg: Ecg) -> None:
    withdrawn = [
        WithdrawnFinding(kind="statement", key="LVH", text="Left ventricular hypertrophy"),
        WithdrawnFinding(kind="measurement", key="qrs_ms"),
    ]
    report = confirmed(afib_report(), "corrected").model_copy(update={"withdrawn": withdrawn})
    [text] = pdf_text(model.render_pdf(ptbxl_ecg, report=report))
    joined = " ".join(text.split())
    assert "Withdrawn: Left ventricular hypertrophy (LVH)" in joined
    assert "qrs_ms" not in joined  # a null measurement shows as such in the measurements
    [plain] = pdf_text(model.render_pdf(ptbxl_ecg, report=confirmed(afib_report(), "corrected")))
    assert "Withdrawn" not in plain


def test_critical_findings_come_first_and_the_comparison_last(ptbxl_ecg: Ecg) -> None:
    pages = pdf_text(model.render_pdf(ptbxl_ecg, report=critical_afib_report()))
    joined = " ".join(" ".join(pages).split())  # the comparison may continue on page 2
    critical = joined.index("CRITICAL: Atrial fibrillation with ventricular rate over 110/min")
    assert critical < joined.index("Atrial fibrillation with rapid ventricular response")
    assert "CRITICAL: QTc 550 ms (500 ms or more)" in joined
    comparison = joined.index("Compared with the prior ECG:")
    assert comparison > joined.index("Non-specific ischemic changes (ISC_)")
    assert "QTc (Bazett) increased by 119 ms (431 -> 550 ms)" in joined


def test_text_that_does_not_fit_continues_on_the_next_page_nothing_cut(ptbxl_ecg: Ecg) -> None:
    statements = [Statement(code=f"S{i:02d}", text=f"Finding number {i}") for i in range(30)]
    warnings = [f"note {i}: lead V{i % 6 + 1} noisy between {i} and {i + 1} s" for i in range(20)]
    report = with_notes(warnings).model_copy(update={"statements": statements})
    pages = pdf_text(model.render_pdf(ptbxl_ecg, report=report))
    assert len(pages) == 2
    assert "(continued on the next page)" in pages[0]
    assert "MUSTERMANN, ERIKA" in pages[1] and "ID: 4711" in pages[1]
    joined = " ".join(" ".join(pages).split())
    for i in range(30):
        assert f"Finding number {i} (S{i:02d})" in joined
    for i in range(20):
        assert f"note {i}: lead V{i % 6 + 1} noisy" in joined


def test_without_header_the_printout_has_the_report_but_no_patient(ptbxl_ecg: Ecg) -> None:
    [text] = pdf_text(model.render_pdf(ptbxl_ecg, header=False, report=afib_report()))
    assert "112 bpm" in text and "UNCONFIRMED" in text
    assert "MUSTERMANN" not in text and "4711" not in text and "St Elsewhere" not in text


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_pdftoppm_draws_header_text_above_the_grid_and_notes_below(
    ptbxl_ecg: Ecg, tmp_path: Path
) -> None:
    """Another PDF implementation (poppler) renders the page: ink in the header band's three
    columns and in the footer lines, the grid's pink below; the report's text is where a
    reader looks for it, not only in the text layer."""
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(model.render_pdf(ptbxl_ecg, report=with_notes(["lead V3 not used"])))
    subprocess.run(
        ["pdftoppm", "-r", "100", "-png", "-singlefile", pdf, tmp_path / "page"], check=True
    )
    page = (tmp_path / "page.png").read_bytes()
    mask = ink(page)
    scale = 100 / 25.4
    header = mask[: int((GRID_TOP_MM - 2) * scale)]
    for left_mm, right_mm in ((10, 96), (100, 140), (144, 270)):  # patient, measurements, report
        assert header[:, int(left_mm * scale) : int(right_mm * scale)].sum() > 200
    footer = mask[int(205.5 * scale) : int(213 * scale)]  # engine and notes lines
    assert footer.sum() > 300
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(model.render_pdf(ptbxl_ecg, header=False))
    subprocess.run(
        ["pdftoppm", "-r", "100", "-png", "-singlefile", plain, tmp_path / "plain"], check=True
    )
    assert not ink((tmp_path / "plain.png").read_bytes())[: int((GRID_TOP_MM - 2) * scale)].any()
    assert Image.open(io.BytesIO(page)).size == (1100, 850)


@pytest.mark.parametrize(
    "record, limit",
    [
        ("ptbxl/records500/00000/00001_hr", HL7_ED_LIMIT_BYTES),
        ("ludb/data/1", HL7_ED_LIMIT_BYTES),
        # 1 kHz with visible noise: every wiggle is on paper (HL7 then splits or refers)
        ("wfdb-samples/s0010_re", 80_000),
    ],
)
def test_a_ten_second_twelve_lead_report_is_compact(
    shared_data: Path, record: str, limit: int
) -> None:
    """About 30 KB at 500 Hz: under the 49,152 bytes whose base64 fits one OBX-5
    (hl7apy's TX limit); the renderer before wrote 120-130 KB."""
    ecg = model.load(shared_data / record)
    pdf = model.render_pdf(ecg, report=with_notes(["lead V3 not used: flat line"]))
    assert len(pdf) < limit


def test_every_sample_lies_on_the_drawn_trace_within_a_fortieth_of_a_millimetre(
    ptbxl_ecg: Ecg,
) -> None:
    """The simplified rhythm strip against the 5000 samples it draws: each sample's distance
    to the drawn line between the kept points around it is within the tolerance plus the
    0.01 mm rounding, while most points are gone."""
    points, _ = pdf_path_points(model.render_pdf(ptbxl_ecg, header=False))
    strip = points[
        (np.abs(points[:, 1] - RHYTHM.y_mm) < 12.5) & (points[:, 0] >= RHYTHM.x_mm - 1e-6)
    ]
    strip = strip[np.argsort(strip[:, 0], kind="stable")]
    fs = ptbxl_ecg.sampling_rate
    values = ptbxl_ecg.lead("II")
    t = np.arange(len(values)) / fs
    samples = np.column_stack((RHYTHM.x_mm + t * 25, RHYTHM.y_mm - values * 10))
    band = RHYTHM.band_mm
    samples = samples[(samples[:, 1] > band[0]) & (samples[:, 1] < band[1])]
    assert len(strip) < 0.5 * len(samples)
    right = np.clip(np.searchsorted(strip[:, 0], samples[:, 0]), 1, len(strip) - 1)
    start, end = strip[right - 1], strip[right]
    chord, offset = end - start, samples - start
    distance = np.abs(offset[:, 0] * chord[:, 1] - offset[:, 1] * chord[:, 0]) / np.hypot(
        chord[:, 0], chord[:, 1]
    )
    assert distance.max() <= SIMPLIFY_TOLERANCE_MM + UNIT_MM


def test_the_pages_a_model_reads_carry_no_patient_data(ptbxl_ecg: Ecg) -> None:
    """The PNG in the package and the VLM's page image are the same for two patients."""
    other = replace(
        ptbxl_ecg,
        metadata=replace(
            patient("DOE^JOHN", "0815"),
            acquisition_time=datetime(2020, 1, 2, 3, 4, 5),
            institution_name="Elsewhere General",
        ),
    )
    assert model.render_png(ptbxl_ecg) == model.render_png(other)
    assert np.array_equal(
        np.asarray(render_page(ptbxl_ecg, 1024)), np.asarray(render_page(other, 1024))
    )
    assert model.render_pdf(ptbxl_ecg) != model.render_pdf(other)  # the header differs


def test_a_comparison_line_adds_only_the_values_its_words_do_not_say() -> None:
    said = ComparisonStatement(
        code="RATE_INCREASED",
        text="Heart rate increased by 40/min (72 -> 112/min)",
        current=112.4,
        prior=72.0,
    )
    assert comparison_line(said) == said.text
    unsaid = ComparisonStatement(
        code="NEW_BBB", text="Left bundle branch block is new", current="CLBBB", prior=None
    )
    assert comparison_line(unsaid) == "Left bundle branch block is new (now CLBBB)"
    nothing = ComparisonStatement(code="NO_CHANGE", text="No change")
    assert comparison_line(nothing) == "No change"
