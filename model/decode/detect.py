"""Which decoder a file needs, told from its content; the name is only a hint.

Spooled DICOM objects have no extension, carts write `.dcm`, `.ecg` or nothing, and a
WFDB record is named without its `.hea`, so the extension alone cannot decide.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from model.decode.scp.sections import looks_like_scp
from model.decode.wfdb_record import header_path
from model.errors import EcgDecodeError

DICOM = "dicom"
WFDB = "wfdb"
XML = "xml"
SCP = "scp-ecg"

_PREAMBLE_BYTES = 128
_HEAD_BYTES = 512
# A DICOM stream without preamble starts with the File Meta group or, bare, with the
# Identifying group (SpecificCharacterSet, SOPClassUID...).
_FIRST_GROUPS = (0x0002, 0x0008)
_XML_ENCODINGS = (
    ("utf-8", b"\xef\xbb\xbf"),
    ("utf-16-le", b"\xff\xfe"),
    ("utf-16-be", b"\xfe\xff"),
)


@dataclass(frozen=True)
class Detected:
    kind: str
    wfdb_header: Path | None = None


def detect_format(path: Path) -> Detected:
    """DICOM (with or without preamble), XML, a WFDB record or SCP-ECG; EcgDecodeError
    otherwise."""
    if path.is_dir():
        raise EcgDecodeError(path, "is a directory, not an ECG file")
    if not path.is_file():
        header = header_path(path)
        if header is None:
            raise EcgDecodeError(path, "no such file, and no WFDB header of that record name")
        return Detected(WFDB, header)
    head = _read_head(path)
    if head[_PREAMBLE_BYTES : _PREAMBLE_BYTES + 4] == b"DICM" or head[:4] == b"DICM":
        return Detected(DICOM)
    if _has_xml_declaration(head):
        return Detected(XML)
    # Before the looser checks: a WFDB signal file is raw samples and may begin with any byte.
    header = header_path(path)
    if header is not None:
        return Detected(WFDB, header)
    if head.lstrip()[:1] == b"<":
        return Detected(XML)
    if _looks_like_bare_dicom(head):
        return Detected(DICOM)
    if looks_like_scp(head):
        return Detected(SCP)
    raise EcgDecodeError(
        path, "unrecognised format: not DICOM, a WFDB record, SCP-ECG or a supported ECG XML"
    )


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            return stream.read(_HEAD_BYTES)
    except OSError as exc:
        raise EcgDecodeError(path, f"cannot read file ({type(exc).__name__})") from None


def _has_xml_declaration(head: bytes) -> bool:
    """'<?xml' in UTF-8 or UTF-16 (Philips writes UTF-16), after an optional byte-order mark.

    The mark alone is not enough: FF FE is also the int16 sample -257 at a .dat's start."""
    for encoding, mark in _XML_ENCODINGS:
        if head.removeprefix(mark).startswith("<?xml".encode(encoding)):
            return True
    return False


def _looks_like_bare_dicom(head: bytes) -> bool:
    """A little-endian data element of group 0002/0008 at offset 0, with either an
    explicit VR (two capital letters) or a plausible implicit-VR length."""
    if len(head) < 8:
        return False
    group, _element = struct.unpack("<HH", head[:4])
    if group not in _FIRST_GROUPS:
        return False
    explicit_vr = head[4:6].isalpha() and head[4:6].isupper()
    implicit_length = struct.unpack("<I", head[4:8])[0] < 1 << 16
    return explicit_vr or implicit_length
