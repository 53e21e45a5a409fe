"""Every supported ECG file format -> the one Ecg type.

    load(path) -> Ecg                      DICOM waveform, WFDB record, GE MUSE XML,
                                           Philips Sierra XML, HL7 aECG, SCP-ECG
    read_muse_measurements(path) -> dict   GE's own global measurements from MUSE XML

Anything that cannot be decoded raises model.errors.EcgDecodeError naming the file and
the reason (never patient data).
"""

from __future__ import annotations

from pathlib import Path

from model.decode.aecg import decode_aecg
from model.decode.detect import DICOM, SCP, WFDB, detect_format
from model.decode.dicom import decode_dicom
from model.decode.muse import decode_muse_root, read_muse_measurements
from model.decode.philips import decode_philips
from model.decode.scp import decode_scp
from model.decode.wfdb_record import decode_wfdb
from model.decode.xml_document import MUSE, PHILIPS, parse_xml, xml_format
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
    if detected.kind == SCP:
        return decode_scp(path)
    root = parse_xml(path)
    kind = xml_format(path, root)
    if kind == PHILIPS:
        return decode_philips(path, root)
    if kind == MUSE:
        return decode_muse_root(path, root)
    return decode_aecg(path, root)
