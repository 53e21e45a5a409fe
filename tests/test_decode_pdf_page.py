"""DICOM Encapsulated PDF: read as a page by one check (model.decode.pdf_page) wherever
the gateway meets it; never by model.load; damaged and hostile documents named."""

from __future__ import annotations

import pydicom
import pytest

import model
from gateway.processing.received_pages import PDF, read_image_object
from model import EcgDecodeError
from model.decode import pdf_page
from model.vlm.page_image import load_page
from tests import dicom_samples as samples


@pytest.fixture()
def pdf_object(shared_data, tmp_path):
    return samples.encapsulated_pdf(shared_data, tmp_path / "page.dcm")


def test_a_good_document_is_one_page_on_both_paths(pdf_object):
    original = bytes(pydicom.dcmread(pdf_object).EncapsulatedDocument)
    received = read_image_object(pdf_object, PDF)
    assert received.pdf == original.rstrip(b"\x00")
    assert received.pdf.startswith(b"%PDF-") and received.pdf.rstrip().endswith(b"%%EOF")
    page = load_page(pdf_object)
    assert (page.kind, page.source_format) == ("pdf", "dicom-pdf")
    assert max(page.image.size) == 2048


def test_model_load_names_it_a_page(pdf_object):
    with pytest.raises(EcgDecodeError, match="DICOM Encapsulated PDF object is an ECG page"):
        model.load(pdf_object)


def _changed(pdf_object, tmp_path, **changes):
    return samples.changed_copy(pdf_object, tmp_path / "bad.dcm", **changes)


BAD = {
    "not a PDF": ({"EncapsulatedDocument": b"GIF89a" + b"\x00" * 100}, "not a PDF (no %PDF-"),
    "empty document": ({"EncapsulatedDocument": b""}, "EncapsulatedDocument: missing or empty"),
    "no document": ({"EncapsulatedDocument": None}, "EncapsulatedDocument: missing or empty"),
    "other MIME type": (
        {"MIMETypeOfEncapsulatedDocument": "text/xml"},
        "MIMETypeOfEncapsulatedDocument: 'text/xml', not application/pdf",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("reader", ["received page", "VLM page"])
def test_bad_document_is_named_on_both_paths(pdf_object, tmp_path, case, reader):
    changes, fragment = BAD[case]
    bad = _changed(pdf_object, tmp_path, **changes)
    with pytest.raises(EcgDecodeError) as caught:
        read_image_object(bad, PDF) if reader == "received page" else load_page(bad)
    assert caught.value.reason.startswith("DICOM Encapsulated PDF ")
    assert fragment in caught.value.reason


def test_oversized_document_is_refused(pdf_object, tmp_path, monkeypatch):
    monkeypatch.setattr(pdf_page, "MAX_PDF_BYTES", 1000)
    with pytest.raises(EcgDecodeError, match="bytes exceeds the 1000-byte limit"):
        read_image_object(pdf_object, PDF)


def test_truncated_pdf_is_not_a_readable_page(pdf_object, tmp_path):
    document = bytes(pydicom.dcmread(pdf_object).EncapsulatedDocument)
    cut = document[: len(document) // 3]
    bad = _changed(pdf_object, tmp_path, EncapsulatedDocument=cut + b"\x00" * (len(cut) % 2))
    with pytest.raises(EcgDecodeError, match="not a readable PDF"):
        load_page(bad)
