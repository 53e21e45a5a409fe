"""Received objects without a waveform: scanned or photographed ECGs (Secondary Capture)
and ECG printouts (Encapsulated PDF).

Until an image engine exists they get a report that says the image was received and
that automated measurement is not available, with the image attached, so they still
reach the EHR and a physician.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset

from model.decode.dicom_metadata import metadata_from_dataset
from model.decode.pdf_page import encapsulated_pdf
from model.ecg import EcgMetadata
from model.errors import EcgDecodeError
from model.report import MEASUREMENT_KEYS, EngineInfo, Report, SourceInfo
from model.vlm.page_image import image_from_pixels

SECONDARY_CAPTURE = "secondary-capture"
PDF = "pdf"

# The version of this report's wording, not of an algorithm: there is none.
ENGINE = EngineInfo(name="image-intake", version="1")
_NO_WAVEFORM = "no waveform: the received object is an image"
_DESCRIPTION = {
    SECONDARY_CAPTURE: "ECG image (DICOM Secondary Capture)",
    PDF: "ECG document (DICOM Encapsulated PDF)",
}


@dataclass(frozen=True)
class ImageObject:
    metadata: EcgMetadata
    report: Report
    png: bytes | None
    pdf: bytes | None
    source_image: bytes
    source_image_type: str


def read_image_object(path: Path, kind: str) -> ImageObject:
    """The report and attachments for a Secondary Capture or Encapsulated PDF file."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on a damaged file
        raise EcgDecodeError(path, f"cannot read DICOM file: {type(exc).__name__}") from None
    metadata = metadata_from_dataset(ds).with_updates(source_format=f"dicom-{kind}")
    if kind == SECONDARY_CAPTURE:
        frames = _frames_as_images(ds, path)
        png = _png(frames[0])
        return ImageObject(
            metadata=metadata,
            report=image_report(kind, len(frames)),
            png=png,
            pdf=_pdf(frames),
            source_image=png,
            source_image_type="image/png",
        )
    if kind == PDF:
        document = encapsulated_pdf(ds, str(path))
        return ImageObject(
            metadata=metadata,
            report=image_report(kind, 1),
            png=None,
            pdf=document,
            source_image=document,
            source_image_type="application/pdf",
        )
    raise EcgDecodeError(path, f"not an image object kind: {kind}")


def image_report(kind: str, pages: int) -> Report:
    description = _DESCRIPTION[kind]
    pages_note = f", {pages} pages" if pages > 1 else ""
    return Report(
        engine=ENGINE,
        source=SourceInfo(kind=kind, format=f"dicom-{kind}"),
        statements=[],
        null_reasons={key: _NO_WAVEFORM for key in MEASUREMENT_KEYS},
        impression=(
            f"{description} received{pages_note}; automated measurement is not available "
            "for images. The attached image needs a physician's reading."
        ),
        warnings=["no waveform: no measurements or statements"],
    )


def _frames_as_images(ds: Dataset, path: Path) -> list[Image.Image]:
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - codec and shape errors come in many types
        raise EcgDecodeError(path, f"cannot decode pixel data: {type(exc).__name__}") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        pixels = pixels[np.newaxis]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    bits_stored = int(ds.get("BitsStored", 8) or 8)
    return [image_from_pixels(frame, photometric, bits_stored) for frame in pixels]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _pdf(images: list[Image.Image]) -> bytes:
    """All frames as pages: the printable form the EHR attaches (presentedForm)."""
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()
