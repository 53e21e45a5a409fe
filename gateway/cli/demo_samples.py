"""The demo's sample ECGs, as the DICOM files a modality would send.

Real recordings from ../shared/data (or $ECG_GATEWAY_DATA) when present: WFDB and
vendor-XML ECGs are converted with the project's own DICOM writer, the real vendor DICOM
file is sent as it is, and a scanned paper ECG is wrapped as a Secondary Capture so the
image path is shown too. Without the data, one synthetic ECG, so a fresh machine still
sees the whole flow.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import model
from model.dicom_write import ecg_to_dicom, page_to_secondary_capture

# (label, path under the data directory) for recordings converted to DICOM waveforms.
_RECORDINGS = (
    ("PTB-XL 00001 (WFDB, 500 Hz)", "ptbxl/records500/00000/00001_hr"),
    ("LUDB 1 (WFDB)", "ludb/data/1"),
    ("CinC 2021 Georgia E07500 (WFDB/.mat)", "cinc2021/E07500"),
    ("GE MUSE XML muse-sinus", "vendor/muse/muse-sinus.xml"),
)
_VENDOR_DICOM = (
    "GE MUSE as DICOM 12-lead waveform",
    "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm",
)
_SCANNED_PAGE = ("Scanned paper ECG (Secondary Capture)", "images/ecg-image-kit/ecg00003.png")


@dataclass(frozen=True)
class DemoSample:
    """One file to send; `name` says where it came from (no patient data)."""

    name: str
    path: Path
    sop_instance_uid: str


def shared_data_dir() -> Path:
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    return Path(os.environ.get("ECG_GATEWAY_DATA", default))


def prepare_samples(data_dir: Path, out_dir: Path) -> list[DemoSample]:
    """Write the samples found in `data_dir` to `out_dir`; a synthetic ECG if none is there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for name, relative in _RECORDINGS:
        source = data_dir / relative
        if source.exists() or source.with_suffix(".hea").exists():
            target = out_dir / _file_name(len(samples), relative)
            samples.append(_converted(name, model.load(source), target))
    vendor = data_dir / _VENDOR_DICOM[1]
    if vendor.exists():
        target = out_dir / _file_name(len(samples), _VENDOR_DICOM[1])
        shutil.copyfile(vendor, target)
        samples.append(DemoSample(_VENDOR_DICOM[0], target, _sop_instance_uid(target)))
    page = data_dir / _SCANNED_PAGE[1]
    if page.exists():
        target = out_dir / _file_name(len(samples), _SCANNED_PAGE[1])
        samples.append(secondary_capture(_SCANNED_PAGE[0], page, target))
    if not samples:
        from model.synthetic import synthetic_ecg

        target = out_dir / "01-synthetic.dcm"
        samples.append(_converted("Synthetic sinus rhythm", synthetic_ecg(), target))
    return samples


def _file_name(index: int, relative: str) -> str:
    stem = Path(relative).name.split(".")[0]
    return f"{index + 1:02d}-{stem}.dcm"


def _converted(name: str, ecg: model.Ecg, target: Path) -> DemoSample:
    ds = ecg_to_dicom(ecg)
    ds.save_as(target, enforce_file_format=True)
    return DemoSample(name, target, str(ds.SOPInstanceUID))


def _sop_instance_uid(path: Path) -> str:
    from pydicom.filereader import read_file_meta_info

    return str(read_file_meta_info(path).MediaStorageSOPInstanceUID)


def secondary_capture(name: str, image: Path, target: Path) -> DemoSample:
    """A scanned ECG page as an uncompressed RGB Secondary Capture, as a scanner sends it."""
    ds = page_to_secondary_capture(np.asarray(Image.open(image).convert("RGB")))
    ds.save_as(target, enforce_file_format=True)
    return DemoSample(name, target, str(ds.SOPInstanceUID))
