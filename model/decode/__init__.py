"""Every supported ECG file format -> the one Ecg type.

    load(path) -> Ecg                      DICOM waveform, WFDB record, GE MUSE XML
    read_muse_measurements(path) -> dict   GE's own global measurements from MUSE XML

Anything that cannot be decoded raises model.errors.EcgDecodeError naming the file and
the reason (never patient data).
"""

from __future__ import annotations

from pathlib import Path

from model.decode.detect import DICOM, WFDB, detect_format
from model.decode.dicom import decode_dicom
from model.decode.muse import decode_muse, read_muse_measurements
from model.decode.wfdb_record import decode_wfdb
from model.ecg import Ecg

__all__ = ["load", "read_muse_measurements"]


def load(path: str | Path) -> Ecg:
    """Decode the ECG at `path`, choosing the decoder from the file's content."""
    path = Path(path)
    detected = detect_format(path)
    if detected.kind == DICOM:
        return decode_dicom(path)
    if detected.kind == WFDB:
        return decode_wfdb(path, detected.wfdb_header)
    return decode_muse(path)
