"""SCP-ECG (EN 1064 / ISO 11073-91064) file structure: the record header, the section
pointer table (section 0) and each section's 16-byte header, read with every length and
offset checked against the file before it is used.

Tolerant of what real recorders write (the Healforce files in ../shared/data): a record
size that disagrees with the file, 0-based instead of 1-based section offsets, a pointer
length that disagrees with the section's own header, a CRC that is not CRC-CCITT. Such
deviations are read through (and listed as warnings) when the section itself is intact;
anything that would make a section reach outside the file is an error.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from model.errors import EcgDecodeError, raise_field_error

FORMAT = "SCP-ECG"
SECTION_HEADER_BYTES = 16
_POINTER_BYTES = 10
_RECORD_HEADER_BYTES = 6
MAX_FILE_BYTES = 16 * 1024 * 1024  # a resting SCP-ECG is 5-100 KB
MAX_SECTIONS = 64
# The sections the decoder reads (9, manufacturer-specific, only for its length); the
# others (12+, not in EN 1064:2005) are neither checked nor kept.
READ_SECTIONS = frozenset(range(12))
# Section 9 is only measured, never used, so its CRC is not checked (the Healforce files'
# section 9 matches no CRC variant).
_UNCHECKED_SECTIONS = frozenset({9})
ZERO_BASED = "section offsets are 0-based (the standard counts from 1)"
CRC_VARIANT = "section CRCs use a non-standard CRC-16 variant (accepted)"


fail = partial(raise_field_error, FORMAT)


@dataclass
class ScpFile:
    """The sections' data (after their 16-byte headers) by section number."""

    path: Path
    sections: dict[int, bytes]
    versions: dict[int, int]
    warnings: list[str] = field(default_factory=list)

    def data(self, number: int) -> bytes | None:
        return self.sections.get(number)


def looks_like_scp(head: bytes) -> bool:
    """Section 0's header follows the 6-byte record header: ID 0, a length that holds at
    least one pointer, and a first pointer naming section 0."""
    if len(head) < _RECORD_HEADER_BYTES + SECTION_HEADER_BYTES + _POINTER_BYTES:
        return False
    number, length = struct.unpack_from("<HI", head, _RECORD_HEADER_BYTES + 2)
    first = struct.unpack_from("<H", head, _RECORD_HEADER_BYTES + SECTION_HEADER_BYTES)[0]
    return number == 0 and first == 0 and SECTION_HEADER_BYTES + _POINTER_BYTES <= length < 1 << 20


def read_scp(path: Path) -> ScpFile:
    """Every section the pointer table names and the file holds."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            fail(path, "file", f"{size} bytes exceeds the {MAX_FILE_BYTES}-byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise EcgDecodeError(path, f"cannot read file ({type(exc).__name__})") from None
    if not looks_like_scp(data[:64]):
        fail(path, "section 0", "no section pointer table after the record header")
    scp = ScpFile(path, {}, {})
    declared = struct.unpack_from("<I", data, 2)[0]
    if declared != len(data):
        scp.warnings.append(
            f"the record size field says {declared} bytes, the file has {len(data)}; "
            "sections were read by their pointers"
        )
    section0 = _section_at(path, data, 0, _RECORD_HEADER_BYTES, None)
    scp.sections[0] = section0
    if len(section0) % _POINTER_BYTES:
        fail(path, "section 0", f"pointer table of {len(section0)} bytes is not 10-byte entries")
    pointers = [
        struct.unpack_from("<HII", section0, offset)
        for offset in range(0, len(section0), _POINTER_BYTES)
    ]
    if len(pointers) > MAX_SECTIONS:
        fail(path, "section 0", f"{len(pointers)} pointers; at most {MAX_SECTIONS} allowed")
    for number, length, index in pointers:
        if number == 0 or number not in READ_SECTIONS or length == 0 or index == 0:
            continue  # section 0 itself, one not read, or one the record does not hold
        start = _locate(path, data, number, index, scp.warnings)
        scp.sections[number] = _section_at(path, data, number, start, length, scp)
    return scp


def _check_crc(path: Path, data: bytes, number: int, start: int, lengths: set, scp) -> None:
    """CRC-CCITT (initial 0xFFFF) over the section after its CRC field, stored little-endian.

    Recorders also write initial 0 and big-endian, over the pointer's length; such a match
    is accepted with a warning. No match is corruption: the section is not used."""
    stored = struct.unpack_from("<H", data, start)[0]
    length = struct.unpack_from("<I", data, start + 4)[0]
    if binascii.crc_hqx(data[start + 2 : start + length], 0xFFFF) == stored:
        return
    swapped = int.from_bytes(stored.to_bytes(2, "little"), "big")
    for span in sorted(lengths):
        crc = binascii.crc_hqx(data[start + 2 : start + span], 0)
        if crc in (stored, swapped) and start + span <= len(data):
            if scp is not None and CRC_VARIANT not in scp.warnings:
                scp.warnings.append(CRC_VARIANT)
            return
    fail(path, f"section {number}", "fails its CRC check (corrupt)")


def _locate(path: Path, data: bytes, number: int, index: int, warnings: list[str]) -> int:
    """The 0-based start of section `number`: its pointer is 1-based; some recorders
    write it 0-based, which shows as the section's ID one byte later."""
    for start, quirk in ((index - 1, False), (index, True)):
        inside = 0 <= start <= len(data) - SECTION_HEADER_BYTES
        if inside and struct.unpack_from("<H", data, start + 2)[0] == number:
            if quirk and ZERO_BASED not in warnings:
                warnings.append(ZERO_BASED)
            return start
    fail(
        path,
        f"section {number}",
        f"pointer to byte {index} does not lead to section {number}'s header "
        f"(file of {len(data)} bytes)",
    )
    return 0


def _section_at(
    path: Path, data: bytes, number: int, start: int, pointer_length: int | None, scp=None
) -> bytes:
    if start + SECTION_HEADER_BYTES > len(data):
        fail(path, f"section {number}", "header lies beyond the end of the file (truncated)")
    length = struct.unpack_from("<I", data, start + 4)[0]
    if not SECTION_HEADER_BYTES <= length <= len(data) - start:
        fail(
            path,
            f"section {number}",
            f"declares {length} bytes but {len(data) - start} remain in the file (truncated "
            "or corrupt)",
        )
    if pointer_length is not None and pointer_length != length and scp is not None:
        scp.warnings.append(
            f"section {number}'s pointer says {pointer_length} bytes, its header {length}; "
            "the header was used"
        )
    if number not in _UNCHECKED_SECTIONS:
        _check_crc(path, data, number, start, {length, pointer_length or length}, scp)
    if scp is not None:
        scp.versions[number] = data[start + 8]
    return data[start + SECTION_HEADER_BYTES : start + length]
