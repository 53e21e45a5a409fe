"""DICOM objects for the intake tests, made from the real data with real tools.

Waveforms: the real vendor DICOM ECG, and WFDB records converted with the project's
own writer. Images: photos of paper ECGs wrapped by dcmtk's img2dcm (JPEG baseline)
and by pydicom (uncompressed). PDF: a photo printed to PDF, wrapped by dcmtk's pdf2dcm.
Bad inputs are cut or corrupted copies of these.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.dsutils import split_dataset

from gateway.intake.accept import ReceivedObject
from model.dicom_write import new_dataset, page_to_secondary_capture

VENDOR_ECG = "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm"
PHOTO_JPEG = "images/ecg-image-kit/ecg00008.jpg"
PHOTO_PNG = "images/ecg-image-kit/ecg00017.png"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def received(path: Path) -> ReceivedObject:
    """A DICOM file as the SCP hands it to intake (from CART1 to ECGGW)."""
    meta, offset = split_dataset(path)
    return ReceivedObject(
        sop_class_uid=str(meta.MediaStorageSOPClassUID),
        sop_instance_uid=str(meta.MediaStorageSOPInstanceUID),
        file_bytes=path.read_bytes(),
        dataset_offset=offset,
        calling_ae="CART1",
        called_ae="ECGGW",
        peer="127.0.0.1:4000",
    )


def copy_with_new_uid(src: Path, dst: Path, **changes: object) -> Path:
    """The same object under a fresh SOP Instance UID, with attributes changed or removed
    (a value of None deletes the attribute)."""
    return changed_copy(src, dst, SOPInstanceUID=generate_uid(), **changes)


def changed_copy(src: Path, dst: Path, **changes: object) -> Path:
    """The object with attributes changed or removed (a value of None deletes the
    attribute); under its own SOP Instance UID, changed content is a correction."""
    ds = pydicom.dcmread(src)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(dst, enforce_file_format=True)
    return dst


def wfdb_ecg(shared_data: Path, record: str, dst: Path) -> Path:
    """A WFDB record written as a DICOM 12-lead ECG by the project's writer."""
    import model
    from model.dicom_write import ecg_to_dicom

    ds = ecg_to_dicom(model.load(shared_data / record))
    ds.save_as(dst, enforce_file_format=True)
    return dst


def secondary_capture_jpeg(shared_data: Path, dst: Path) -> Path:
    """A photographed paper ECG as JPEG-baseline Secondary Capture, made by dcmtk img2dcm."""
    subprocess.run(["img2dcm", str(shared_data / PHOTO_JPEG), str(dst)], check=True)
    return dst


def secondary_capture_native(shared_data: Path, dst: Path) -> Path:
    """A scanned paper ECG (PNG) as uncompressed RGB Secondary Capture, built with pydicom."""
    pixels = np.asarray(Image.open(shared_data / PHOTO_PNG).convert("RGB"))
    ds = page_to_secondary_capture(pixels, modality="OT", conversion_type="DI")
    ds.PatientID = f"TEST{os.getpid()}"
    ds.save_as(dst, enforce_file_format=True)
    return dst


def encapsulated_pdf(shared_data: Path, dst: Path) -> Path:
    """A photographed ECG printed to PDF, wrapped by dcmtk pdf2dcm."""
    pdf = dst.with_suffix(".pdf")
    Image.open(shared_data / PHOTO_JPEG).convert("RGB").save(pdf, format="PDF")
    subprocess.run(["pdf2dcm", str(pdf), str(dst)], check=True)
    return dst


def ct_image(dst: Path) -> Path:
    """A tiny CT image: a SOP class the gateway must refuse in negotiation."""
    ds = new_dataset(CT_IMAGE_STORAGE, modality="CT")
    ds.PatientID = f"TEST{os.getpid()}"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.zeros((8, 8), np.uint16).tobytes()
    ds.save_as(dst, enforce_file_format=True)
    return dst


def random_bytes_dicom(dst: Path, sop_class: str) -> Path:
    """Valid file meta followed by random bytes: what a corrupted transfer looks like."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.save_as(dst, enforce_file_format=True)
    with open(dst, "ab") as fh:
        fh.write(np.random.default_rng(7).bytes(4096))
    return dst


def truncated(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst
