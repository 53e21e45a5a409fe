"""An SCP-ECG writer for tests, written from EN 1064 independently of the decoder's
modules: it makes standard records (Huffman default or file tables, first or second
differences, reference-beat subtraction, sections 1, 7, 8, 9, 10) and, through its parameters,
records damaged in one named way each, with valid CRCs so the damage is what is found."""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field

import numpy as np

SCP_LEAD_IDS = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8}
# (prefix, total, value, code as transmitted) of the default table
DEFAULT = [(1, 1, 0, "0")] + [
    (n + 2, n + 2, sign * n, "1" * n + "0" + s)
    for n in range(1, 9)
    for sign, s in ((1, "0"), (-1, "1"))
]


@dataclass
class Record:
    """What the record holds; integer samples, one row per lead."""

    samples: np.ndarray
    lead_ids: list[int]
    avm_nv: int = 5000
    interval_us: int = 2000
    difference: int = 2
    huffman: str = "default"  # "default", "file" (one table), "switching" (two) or "none"
    reference: np.ndarray | None = None  # reference beat, one row per lead
    fiducial: int = 0  # 1-based sample of the reference beat's fiducial
    qrs: list[tuple[int, int, int]] = field(default_factory=list)  # SB, fc, SE, 1-based
    tags: dict[int, bytes] = field(default_factory=dict)
    section7: bytes | None = None
    section9: bytes | None = None  # manufacturer-specific: any bytes
    section10: bytes | None = None  # see lead_measurement_block
    statements: list[str] = field(default_factory=list)
    overrides: dict[str, object] = field(default_factory=dict)  # the damage


def encode_default(values: np.ndarray) -> str:
    bits = []
    table = {value: code for _, _, value, code in DEFAULT}
    for v in values.tolist():
        if v in table:
            bits.append(table[v])
        elif -128 <= v <= 127:
            bits.append("1111111110" + format(v & 0xFF, "08b"))
        else:
            bits.append("1111111111" + format(v & 0xFFFF, "016b"))
    return "".join(bits)


def encode_file_table(values: np.ndarray) -> str:
    """Table: '0' + 8-bit value, '1' + 16-bit value."""
    return "".join(
        "0" + format(v & 0xFF, "08b") if -128 <= v <= 127 else "1" + format(v & 0xFFFF, "016b")
        for v in values.tolist()
    )


def encode_switching(values: np.ndarray) -> str:
    """Two tables. Table 1: '1' + 16-bit value, '0' switches to table 2. Table 2 (2-bit
    prefixes, so their stored bit-reversal matters): '01' + 8-bit value, '11' switches
    back. Values that fit 8 bits go through table 2, the others through table 1."""
    bits, table = [], 1
    for v in values.tolist():
        small = -128 <= v <= 127
        if small and table == 1:
            bits.append("0")
            table = 2
        elif not small and table == 2:
            bits.append("11")
            table = 1
        bits.append("01" + format(v & 0xFF, "08b") if small else "1" + format(v & 0xFFFF, "016b"))
    return "".join(bits)


# A switch code's base value is the 0-based index of the table it switches to.
SWITCHING_TABLES = [
    [(1, 17, 1, 0, 0b1), (1, 1, 0, 1, 0b0)],
    [(2, 10, 1, 0, 0b10), (2, 2, 0, 0, 0b11)],  # '01' and '11' stored bit-reversed
]


def to_bytes(bits: str) -> bytes:
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def differences(values: np.ndarray, order: int) -> np.ndarray:
    if order == 0:
        return values
    out = values.copy()
    if order == 1:
        out[1:] = values[1:] - values[:-1]
    else:
        out[2:] = values[2:] - 2 * values[1:-1] + values[:-2]
    return out


def section(number: int, body: bytes) -> bytes:
    body += b"\x00" * (len(body) % 2)
    header = struct.pack("<HIBB6s", number, 16 + len(body), 20, 20, b"SCPECG")
    crc = binascii.crc_hqx(header + body, 0xFFFF)
    return struct.pack("<H", crc) + header + body


def _streams(rec: Record, rows: np.ndarray) -> list[bytes]:
    encode = {
        "default": encode_default,
        "file": encode_file_table,
        "switching": encode_switching,
    }.get(rec.huffman)
    streams = []
    for row in rows:
        diff = differences(row.astype(np.int64), rec.difference)
        streams.append(to_bytes(encode(diff)) if encode else diff.astype("<i2").tobytes())
    return rec.overrides.get("streams", streams)


def _encoded_section(rec: Record, rows: np.ndarray, bimodal: int) -> bytes:
    streams = _streams(rec, rows)
    counts = rec.overrides.get("counts", [len(s) for s in streams])
    head = struct.pack(
        "<HHBB",
        rec.overrides.get("avm", rec.avm_nv),
        rec.overrides.get("interval", rec.interval_us),
        rec.difference,
        bimodal,
    )
    return head + struct.pack(f"<{len(counts)}H", *counts) + b"".join(streams)


def _huffman_section(rec: Record) -> bytes:
    if "section2" in rec.overrides:
        return rec.overrides["section2"]
    if rec.huffman == "default":
        return struct.pack("<H", 19999)
    tables = (
        SWITCHING_TABLES
        if rec.huffman == "switching"
        else [
            [(1, 9, 1, 0, 0b0), (1, 17, 1, 0, 0b1)]  # bit-reversal of one bit is itself
        ]
    )
    body = struct.pack("<H", len(tables))
    for codes in tables:
        body += struct.pack("<H", len(codes)) + b"".join(struct.pack("<BBBhI", *c) for c in codes)
    return body


def build(rec: Record) -> bytes:
    n_leads, n = rec.samples.shape
    rhythm = rec.samples.astype(np.int64).copy()
    if rec.reference is not None:
        for start, center, end in rec.qrs:
            for s in range(start, end + 1):
                rhythm[:, s - 1] -= rec.reference[:, s - center + rec.fiducial - 1]
    sections = {}
    if rec.tags:
        tags = b"".join(struct.pack("<BH", t, len(v)) + v for t, v in rec.tags.items())
        sections[1] = tags + struct.pack("<BH", 255, 0)
    if rec.huffman != "none":
        sections[2] = _huffman_section(rec)
    flags = (0x01 if rec.reference is not None else 0) | 0x04 | (n_leads << 3)
    flags = rec.overrides.get("flags", flags)
    count = rec.overrides.get("lead_count", n_leads)
    end = rec.overrides.get("end_sample", n)
    sections[3] = struct.pack("<BB", count, flags) + b"".join(
        struct.pack("<IIB", 1, end, lead) for lead in rec.lead_ids
    )
    if rec.reference is not None:
        beat_ms = rec.reference.shape[1] * rec.interval_us // 1000
        body = struct.pack("<HHH", beat_ms, rec.fiducial, len(rec.qrs))
        body += b"".join(struct.pack("<HIII", 0, *zone) for zone in rec.qrs)
        body += b"".join(struct.pack("<II", zone[0], zone[2]) for zone in rec.qrs)
        sections[4] = body
        sections[5] = _encoded_section(rec, rec.reference, 0)
    sections[6] = _encoded_section(rec, rhythm, rec.overrides.get("bimodal", 0))
    if rec.section7 is not None:
        sections[7] = rec.section7
    for number, body in ((9, rec.section9), (10, rec.section10)):
        if body is not None:
            sections[number] = body
    if rec.statements:
        body = struct.pack("<BHBBBBB", 1, 2024, 5, 17, 10, 30, 0) + bytes([len(rec.statements)])
        for i, text in enumerate(rec.statements, start=1):
            value = text.encode("latin-1") + b"\x00"
            body += struct.pack("<BH", i, len(value)) + value
        sections[8] = body
    return _assemble(sections)


def _assemble(sections: dict[int, bytes]) -> bytes:
    numbers = list(range(12))
    encoded = {number: section(number, body) for number, body in sections.items()}
    pointer_bytes = 10 * len(numbers)
    offset = 6 + 16 + pointer_bytes
    pointers, layout = [], []
    for number in numbers[1:]:
        if number in encoded:
            pointers.append((number, len(encoded[number]), offset + 1))
            layout.append(encoded[number])
            offset += len(encoded[number])
        else:
            pointers.append((number, 0, 0))
    table = [(0, 16 + pointer_bytes, 7), *pointers]
    body = b"".join(struct.pack("<HII", *entry) for entry in table)
    records = section(0, body) + b"".join(layout)
    size = 6 + len(records)
    without_crc = struct.pack("<I", size) + records
    return struct.pack("<H", binascii.crc_hqx(without_crc, 0xFFFF)) + without_crc


def acquisition_tags(patient_id: str = "PID-4711") -> dict[int, bytes]:
    return {
        0: b"Doe\x00",
        1: b"Jane\x00",
        2: patient_id.encode() + b"\x00",
        4: struct.pack("<HB", 63, 1),
        5: struct.pack("<HBB", 1961, 3, 14),
        8: bytes([2]),
        25: struct.pack("<HBB", 2024, 5, 17),
        26: bytes([10, 30, 5]),
        27: struct.pack("<H", 5),  # 0.05 Hz
        28: struct.pack("<H", 150),
        29: bytes([0x02]),  # 50 Hz notch
        14: acquiring_device("CardioX", "SN-0042", "Acme Medical"),
    }


def acquiring_device(model: str, serial: str, manufacturer: str) -> bytes:
    """Tag 14: institution, department, device ID, type, manufacturer code, model (6 bytes),
    protocol, compatibility, language, capabilities, mains frequency, 16 reserved, then the
    analysing program revision (length-prefixed) and four NUL-terminated strings."""
    fixed = struct.pack("<HHHBB", 1, 2, 3, 0, 255) + model.encode()[:5].ljust(6, b"\x00")
    fixed += bytes([20, 0xA0, 0, 0, 1]) + bytes(16)
    revision = b"1.0\x00"
    strings = [serial, "sw 2.1", "scp 2.0", manufacturer]
    return (
        fixed + bytes([len(revision)]) + revision + b"".join(s.encode() + b"\x00" for s in strings)
    )


def global_measurements(
    rr=857, p_on=0, p_off=104, qrs_on=160, qrs_off=254, t_off=560, axes=(45, 30, 40)
):
    return struct.pack("<BBHH", 2, 0, rr, rr) + struct.pack(
        "<HHHHHhhh", p_on, p_off, qrs_on, qrs_off, t_off, *axes
    )


def lead_measurement_block(
    leads: list[tuple[int, list[int]]], count: int | None = None, lengths: list | None = None
) -> bytes:
    """Section 10 (EN 1064:2005 5.12): lead count, 2 reserved bytes, then per lead its ID,
    the byte length of its values and the values (int16: P duration, PR, QRS, QT, Q, R, S,
    R', S' durations, Q, R, S, R', S', J, P+, P-, T+, T- amplitudes, ST slope, ...).
    `count` and `lengths` override what is declared, to damage the block."""
    body = struct.pack("<HH", len(leads) if count is None else count, 0)
    for i, (lead_id, values) in enumerate(leads):
        length = 2 * len(values) if lengths is None else lengths[i]
        body += struct.pack(f"<HH{len(values)}h", lead_id, length, *values)
    return body
