"""Pictures of ECGs -> the RGB page the VLM reads: real scans and photos (ecg-image-kit),
PDFs (our renderer's and reportlab's), DICOM Secondary Capture made by dcmtk and pydicom,
DICOM Encapsulated PDF made by dcmtk; and clear errors for what is none of these."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfgen import canvas

import model
from model.errors import EcgDecodeError
from model.vlm.page_image import (
    PDF_LONGEST_EDGE_PX,
    image_from_pixels,
    is_page_file,
    load_page,
    page_from_pdf,
)
from tests import dicom_samples as samples

SCANS = "images/ecg-image-kit"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("ecg00001.png", "image/png"),  # RGB scan
        ("ecg00010.png", "image/png"),  # RGBA
        ("ecg00015.png", "image/png"),  # palette image
        ("ecg00008.jpg", "image/jpeg"),  # phone photo
    ],
)
def test_real_scans_and_photos_become_rgb_pages(shared_data: Path, name: str, media_type: str):
    path = shared_data / SCANS / name
    page = load_page(path)
    assert page.image.mode == "RGB" and page.image.size == Image.open(path).size
    assert (page.kind, page.source_format, page.notes) == ("secondary-capture", media_type, ())
    assert is_page_file(path)


def test_transparent_areas_become_white_paper(tmp_path: Path):
    """A screenshot with a transparent background (black in RGB) must not turn black."""
    pixels = np.zeros((40, 60, 4), dtype=np.uint8)
    pixels[10:30, 20:40] = (200, 0, 0, 255)
    path = tmp_path / "screenshot.png"
    Image.fromarray(pixels, mode="RGBA").save(path)
    page = np.asarray(load_page(path).image)
    assert page[0, 0].tolist() == [255, 255, 255] and page[20, 30].tolist() == [200, 0, 0]


def test_rendered_pdf_is_rasterised_at_the_model_resolution(shared_data: Path, tmp_path: Path):
    ecg = model.load(shared_data / "ptbxl/records500/00000/00001_hr")
    path = tmp_path / "page.pdf"
    path.write_bytes(model.render_pdf(ecg, header=False))
    page = load_page(path)
    assert (page.kind, page.source_format, page.notes) == ("pdf", "application/pdf", ())
    assert max(page.image.size) == PDF_LONGEST_EDGE_PX
    assert page.image.size[0] > page.image.size[1]  # landscape, like the paper
    dark = (np.asarray(page.image.convert("L")) < 100).mean()
    assert 0.005 < dark < 0.3  # traces drawn, not a blank or black raster


def test_multi_page_pdf_reads_page_one_and_says_so():
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=landscape(A4))
    for _ in range(3):
        pdf.line(50, 300, 800, 300)
        pdf.showPage()
    pdf.save()
    page = page_from_pdf(buffer.getvalue(), "pdf", "upload.pdf")
    assert page.notes == ("document has 3 pages; only page 1 was read",)


def test_secondary_capture_native_rgb(shared_data: Path, tmp_path: Path):
    path = samples.secondary_capture_native(shared_data, tmp_path / "sc.dcm")
    page = load_page(path)
    expected = Image.open(shared_data / samples.PHOTO_PNG).convert("RGB")
    assert (page.kind, page.source_format) == ("secondary-capture", "dicom-secondary-capture")
    assert np.array_equal(np.asarray(page.image), np.asarray(expected))
    assert is_page_file(path)


def test_secondary_capture_jpeg_from_dcmtk(shared_data: Path, tmp_path: Path):
    path = samples.secondary_capture_jpeg(shared_data, tmp_path / "sc-jpeg.dcm")
    page = load_page(path)
    assert page.image.size == Image.open(shared_data / samples.PHOTO_JPEG).size
    photo = np.asarray(Image.open(shared_data / samples.PHOTO_JPEG).convert("RGB"), dtype=float)
    difference = np.abs(np.asarray(page.image, dtype=float) - photo).mean()
    assert difference < 8  # lossy JPEG, same picture


def test_encapsulated_pdf_from_dcmtk(shared_data: Path, tmp_path: Path):
    path = samples.encapsulated_pdf(shared_data, tmp_path / "pdf.dcm")
    page = load_page(path)
    assert (page.kind, page.source_format) == ("pdf", "dicom-pdf")
    assert max(page.image.size) == PDF_LONGEST_EDGE_PX
    assert is_page_file(path)


def test_sixteen_bit_monochrome1_is_windowed_and_inverted():
    frame = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    image = image_from_pixels(frame, "MONOCHROME1", bits_stored=12)
    assert np.asarray(image)[..., 0].tolist() == [[255, 192], [128, 0]]


def test_waveform_inputs_are_not_pages(shared_data: Path):
    assert not is_page_file(shared_data / samples.VENDOR_ECG)
    assert not is_page_file(shared_data / "ptbxl/records500/00000/00001_hr")


def test_unreadable_inputs_name_the_file(tmp_path: Path, shared_data: Path):
    fake = tmp_path / "scan.png"
    fake.write_bytes(b"\x89PNG but not really")
    with pytest.raises(EcgDecodeError, match=r"scan\.png: not a readable image"):
        load_page(fake)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n" + bytes(200))
    with pytest.raises(EcgDecodeError, match=r"broken\.pdf: not a readable PDF"):
        load_page(broken)
    no_pixels = samples.secondary_capture_native(shared_data, tmp_path / "sc.dcm")
    ds = pydicom.dcmread(no_pixels)
    del ds.PixelData
    ds.save_as(no_pixels)
    with pytest.raises(EcgDecodeError, match="neither pixel data nor a PDF"):
        load_page(no_pixels)
    with pytest.raises(EcgDecodeError, match="cannot read"):
        load_page(tmp_path / "missing.png")
