"""ECG pages that arrive as pictures - DICOM Secondary Capture pixel data, PDF printouts,
PNG or JPEG scans and photos - turned into the RGB image the VLM reads.

These inputs have no waveform, so nothing can be measured: the VLM reads the page
itself. Multi-page documents and multi-frame captures are read from their first page;
the note says so, and the report carries it as a warning.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pypdfium2
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset

from model.decode.pdf_page import ENCAPSULATED_PDF_SOP_CLASS, encapsulated_pdf
from model.errors import EcgDecodeError
from model.report import SourceKind

SECONDARY_CAPTURE: SourceKind = "secondary-capture"
PDF: SourceKind = "pdf"
# PDF pages are rasterised with this longest edge: at least what the processor keeps
# (model.vlm.settings.DEFAULT_LONGEST_EDGE), so the model loses nothing to the rasteriser.
PDF_LONGEST_EDGE_PX = 2048
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


@dataclass(frozen=True)
class PageImage:
    """One ECG page as a picture, with what kind of object it came from."""

    image: Image.Image
    kind: SourceKind
    source_format: str
    notes: tuple[str, ...] = ()


def page_from_pdf(data: bytes, kind: SourceKind, source: str) -> PageImage:
    image, pages = pdf_first_page(data, source)
    notes = (f"document has {pages} pages; only page 1 was read",) if pages > 1 else ()
    return PageImage(image, kind, "application/pdf", notes)


def _decode_image(data: bytes, source: str) -> tuple[Image.Image, str]:
    """The RGB image and its media type as Pillow recognised it."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return _rgb(opened), opened.get_format_mimetype() or "image/unknown"
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise EcgDecodeError(source, f"not a readable image: {exc}") from None


def pdf_first_page(data: bytes, source: str) -> tuple[Image.Image, int]:
    """Page 1 rasterised to PDF_LONGEST_EDGE_PX on its longest edge, and the page count."""
    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise EcgDecodeError(source, f"not a readable PDF: {exc}") from None
    try:
        pages = len(document)
        if pages == 0:
            raise EcgDecodeError(source, "PDF has no pages")
        page = document[0]
        scale = PDF_LONGEST_EDGE_PX / max(page.get_size())
        image = page.render(scale=scale).to_pil()
        return _rgb(image), pages
    finally:
        document.close()


def image_from_pixels(pixels: np.ndarray, photometric: str, bits_stored: int) -> Image.Image:
    """One frame of DICOM pixel data as 8-bit RGB, windowed to its full range."""
    frame = np.asarray(pixels)
    if frame.dtype != np.uint8 or bits_stored != 8:
        frame = frame.astype(np.float64)
        low, high = float(frame.min()), float(frame.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        frame = ((frame - low) * scale).astype(np.uint8)
    if photometric == "MONOCHROME1":
        frame = 255 - frame
    mode = "RGB" if frame.ndim == 3 else "L"
    return Image.fromarray(frame, mode=mode).convert("RGB")


def page_from_dataset(ds: Dataset, source: str) -> PageImage:
    """A DICOM Encapsulated PDF or an image object (Secondary Capture) as a page."""
    if str(ds.get("SOPClassUID", "")) == ENCAPSULATED_PDF_SOP_CLASS:
        page = page_from_pdf(encapsulated_pdf(ds, source), PDF, source)
        return PageImage(page.image, PDF, "dicom-pdf", page.notes)
    if "PixelData" not in ds:
        raise EcgDecodeError(source, "DICOM object has neither pixel data nor a PDF document")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - codec and shape errors come in many types
        raise EcgDecodeError(source, f"cannot decode pixel data: {type(exc).__name__}") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    first = pixels[0] if frames > 1 else pixels
    if samples == 1 and first.ndim != 2 or samples == 3 and first.ndim != 3:
        raise EcgDecodeError(source, f"unexpected pixel data shape {pixels.shape}")
    image = image_from_pixels(
        first,
        str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
        int(ds.get("BitsStored", 8) or 8),
    )
    notes = (f"capture has {frames} frames; only frame 1 was read",) if frames > 1 else ()
    return PageImage(image, SECONDARY_CAPTURE, "dicom-secondary-capture", notes)


def load_page(path: str | Path) -> PageImage:
    """A page from a file: DICOM (Secondary Capture or Encapsulated PDF), PDF or an image."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EcgDecodeError(path, f"cannot read: {exc.strerror or exc}") from None
    if data.startswith(b"%PDF-"):
        return page_from_pdf(data, PDF, str(path))
    if _is_dicom(data):
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on a damaged file
            raise EcgDecodeError(path, f"cannot read DICOM file: {type(exc).__name__}") from None
        return page_from_dataset(ds, str(path))
    image, media_type = _decode_image(data, str(path))
    return PageImage(image, SECONDARY_CAPTURE, media_type)  # a scan or photo: a captured picture


def is_page_file(path: str | Path) -> bool:
    """True for inputs read as pictures: PDFs, images and non-waveform DICOM objects."""
    path = Path(path)
    if path.suffix.lower() in (*IMAGE_SUFFIXES, ".pdf"):
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    if head.startswith(b"%PDF-"):
        return True
    if not _is_dicom(head):
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - a damaged file is the waveform decoder's to report
        return False
    return not str(ds.get("SOPClassUID", "")).startswith("1.2.840.10008.5.1.4.1.1.9.")


def _is_dicom(data: bytes) -> bool:
    return data[128:132] == b"DICM"


def _rgb(image: Image.Image) -> Image.Image:
    """Transparent areas become white paper, not black."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, "white")
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")
