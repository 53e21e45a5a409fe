"""SCP-ECG Huffman coding (section 2): the standard's default table, tables from the file,
and decoding of one lead's bit stream, with every failure named.

Decoding peeks the next 16 bits through a table built for every bit position with numpy,
so the Python loop runs once per sample, and never more often than the lead's declared
sample count: a stream that does not decode ends in an error, not a hang.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

DEFAULT_TABLES = 19999  # section 2's table count when the default table is used
MAX_PREFIX_BITS = 16
MAX_TABLES = 64
MAX_CODES = 256


class HuffmanError(ValueError):
    """What is wrong with a table or a stream, in words for an EcgDecodeError."""


@dataclass(frozen=True)
class Code:
    prefix_bits: int
    total_bits: int
    mode: int  # 1: a value; 0: switch to table number `value`
    value: int
    code: int  # the prefix, first transmitted bit most significant


def _default_table() -> tuple[Code, ...]:
    """EN 1064 Annex: 0 is '0'; +-n (n = 1..8) is n ones, a 0 and a sign bit;
    '1111111110' escapes an 8-bit and '1111111111' a 16-bit two's-complement value."""
    codes = [Code(1, 1, 1, 0, 0b0)]
    for magnitude in range(1, 9):
        ones = (1 << magnitude) - 1
        for sign, value in ((0, magnitude), (1, -magnitude)):
            codes.append(Code(magnitude + 2, magnitude + 2, 1, value, (ones << 2) | sign))
    codes.append(Code(10, 18, 1, 0, 0b1111111110))
    codes.append(Code(10, 26, 1, 0, 0b1111111111))
    return tuple(codes)


DEFAULT_TABLE = _default_table()


def read_tables(data: bytes) -> list[tuple[Code, ...]]:
    """Section 2's tables; [DEFAULT_TABLE] for the default. Base codes are stored with
    their first transmitted bit least significant, so they are bit-reversed here."""
    if len(data) < 2:
        raise HuffmanError("section 2 holds no table count")
    count = struct.unpack_from("<H", data, 0)[0]
    if count == DEFAULT_TABLES:
        return [DEFAULT_TABLE]
    if not 1 <= count <= MAX_TABLES:
        raise HuffmanError(f"{count} Huffman tables declared; 1-{MAX_TABLES} expected")
    tables, offset = [], 2
    for number in range(1, count + 1):
        if offset + 2 > len(data):
            raise HuffmanError(f"table {number} lies beyond the end of section 2")
        n_codes = struct.unpack_from("<H", data, offset)[0]
        offset += 2
        if not 1 <= n_codes <= MAX_CODES or offset + 9 * n_codes > len(data):
            raise HuffmanError(f"table {number} declares {n_codes} codes, which section 2 lacks")
        codes = []
        for _ in range(n_codes):
            prefix, total, mode, value, stored = struct.unpack_from("<BBBhI", data, offset)
            offset += 9
            codes.append(Code(prefix, total, mode, value, _reversed(stored, prefix)))
        tables.append(tuple(codes))
    return tables


def _reversed(code: int, bits: int) -> int:
    return int(f"{code & ((1 << bits) - 1):0{bits}b}"[::-1], 2) if bits else 0


@dataclass(frozen=True)
class _Lookup:
    """Next 16 bits -> (code index or -1)."""

    index: np.ndarray
    codes: tuple[Code, ...]


def _lookup(table: tuple[Code, ...], number: int, n_tables: int) -> _Lookup:
    index = np.full(1 << MAX_PREFIX_BITS, -1, dtype=np.int32)
    for position, code in enumerate(table):
        where = f"Huffman table {number} code {position + 1}"
        if not 1 <= code.prefix_bits <= MAX_PREFIX_BITS:
            raise HuffmanError(f"{where}: prefix of {code.prefix_bits} bits (1-16 allowed)")
        if code.mode == 1 and not code.prefix_bits <= code.total_bits <= code.prefix_bits + 32:
            raise HuffmanError(
                f"{where}: {code.total_bits} total bits for a {code.prefix_bits}-bit prefix"
            )
        if code.mode == 0 and not (0 <= code.value < n_tables or code.value == DEFAULT_TABLES):
            raise HuffmanError(
                f"{where}: switches to table index {code.value}; the file has {n_tables}"
            )
        shift = MAX_PREFIX_BITS - code.prefix_bits
        span = slice(code.code << shift, (code.code + 1) << shift)
        taken = index[span]
        if np.any(taken >= 0):
            other = int(taken[taken >= 0][0]) + 1
            raise HuffmanError(f"{where} overlaps code {other}: the table is not prefix-free")
        index[span] = position
    return _Lookup(index, table)


def lookups(tables: list[tuple[Code, ...]]) -> list[_Lookup]:
    """The file's tables, then the default table (a switch code may name it by 19999)."""
    found = [_lookup(table, n + 1, len(tables)) for n, table in enumerate(tables)]
    return [*found, _DEFAULT_LOOKUP]


_DEFAULT_LOOKUP = _lookup(DEFAULT_TABLE, 0, 1)


def decode_stream(data: bytes, tables: list[_Lookup], n_samples: int) -> np.ndarray:
    """`n_samples` values from one lead's bit stream (starting with table 1). Only the
    bytes that `n_samples` of the longest code (after a switch through every table) can
    fill are unpacked: a stream that declares more cannot make the peek table larger."""
    codes = [code for table in tables for code in table.codes]
    longest = max((c.total_bits for c in codes if c.mode == 1), default=0)
    switches = max((c.prefix_bits for c in codes if c.mode == 0), default=0) * len(tables)
    data = data[: (n_samples * (longest + switches) + 7) // 8]
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    n_bits = len(bits)
    padded = np.concatenate([bits, np.zeros(32, dtype=np.uint8)]).astype(np.uint16)
    peek = np.zeros(n_bits + 1, dtype=np.uint16)
    for offset in range(MAX_PREFIX_BITS):
        peek |= padded[offset : offset + n_bits + 1] << (MAX_PREFIX_BITS - 1 - offset)
    if all(code.mode == 1 for code in tables[0].codes):
        return _decode_one_table(bits, peek[:n_bits], tables[0], n_samples)
    peek_list = peek.tolist()
    out = np.empty(n_samples, dtype=np.int64)
    table = tables[0]
    position = count = 0
    while count < n_samples:
        if position >= n_bits:
            raise HuffmanError(f"stream ends after {count} of {n_samples} samples")
        found = int(table.index[peek_list[position]])
        if found < 0:
            raise HuffmanError(f"bits at offset {position} match no code of the Huffman table")
        code = table.codes[found]
        position += code.prefix_bits
        if code.mode == 0:  # the base value is the new table's 0-based index, as the
            # pixelmed and biosig readers take it
            table = tables[-1] if code.value == DEFAULT_TABLES else tables[code.value]
            continue
        extra = code.total_bits - code.prefix_bits
        if extra:
            if position + extra > n_bits:
                raise HuffmanError(f"stream ends inside sample {count + 1}")
            raw = int("".join(map(str, bits[position : position + extra].tolist())), 2)
            out[count] = raw - (1 << extra) if raw >> (extra - 1) else raw
            position += extra
        else:
            out[count] = code.value
        count += 1
    return out


def _decode_one_table(
    bits: np.ndarray, peek: np.ndarray, table: _Lookup, n_samples: int
) -> np.ndarray:
    """The common case, a first table without switch codes: the code at every bit position
    (and so its length) is known up front, Python only walks from code to code, and the
    values are gathered with numpy afterwards."""
    n_bits = len(bits)
    found = table.index[peek]
    totals = np.array([code.total_bits for code in table.codes])
    steps = np.where(found >= 0, totals[found], 0).tolist()
    positions = []
    position = 0
    for count in range(n_samples):
        if position >= n_bits:
            raise HuffmanError(f"stream ends after {count} of {n_samples} samples")
        step = steps[position]
        if step == 0:
            raise HuffmanError(f"bits at offset {position} match no code of the Huffman table")
        positions.append(position)
        position += step
    if position > n_bits:
        raise HuffmanError(f"stream ends inside sample {n_samples}")
    at = np.array(positions)
    which = found[at]
    values = np.array([code.value for code in table.codes], dtype=np.int64)[which]
    for number, code in enumerate(table.codes):
        extra = code.total_bits - code.prefix_bits
        chosen = which == number
        if extra and chosen.any():
            start = at[chosen] + code.prefix_bits
            raw = np.zeros(len(start), dtype=np.int64)
            for offset in range(extra):
                raw = (raw << 1) | bits[start + offset]
            values[chosen] = np.where(raw >> (extra - 1), raw - (1 << extra), raw)
    return values
