"""The PDF inside a DICOM Encapsulated PDF object: an ECG page, not a waveform.

One check for everyone who reads such an object (the received-page report, the VLM's
page reader): it is read like a Secondary Capture, as a page, never by model.load.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from model.errors import EcgDecodeError

ENCAPSULATED_PDF_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
FORMAT = "DICOM Encapsulated PDF"
# A 12-lead report page is 50-150 KB; a scanned multi-page printout a few MB.
MAX_PDF_BYTES = 32 * 1024 * 1024


def encapsulated_pdf(ds: Dataset, source: str) -> bytes:
    """The document's bytes, DICOM's even-length padding removed; EcgDecodeError naming
    the attribute when it is missing, not a PDF, of another MIME type or too large."""
    mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "").strip()
    if mime and mime != "application/pdf":
        raise EcgDecodeError(
            source, f"{FORMAT} MIMETypeOfEncapsulatedDocument: {mime!r}, not application/pdf"
        )
    element = ds.get("EncapsulatedDocument")
    document = bytes(element or b"")
    if not document:
        raise EcgDecodeError(source, f"{FORMAT} EncapsulatedDocument: missing or empty")
    if len(document) > MAX_PDF_BYTES:
        raise EcgDecodeError(
            source,
            f"{FORMAT} EncapsulatedDocument: {len(document)} bytes exceeds the "
            f"{MAX_PDF_BYTES}-byte limit",
        )
    if not document.startswith(b"%PDF-"):
        raise EcgDecodeError(source, f"{FORMAT} EncapsulatedDocument: not a PDF (no %PDF- header)")
    return document[:-1] if document.endswith(b"\x00") else document
