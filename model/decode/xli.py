"""Philips XLI waveform compression: per lead, LZW (10-bit codes) over a split-byte,
second-difference encoding of the int16 samples.

Written here rather than taken from sierraecg (the reference reader, used as the second
implementation in tests and as the bench baseline) because that reader decodes one byte
per Python call, has no limit on what a hostile stream expands to and fails on damaged
data with IndexError or a silent short lead. Here the codes are unpacked with numpy, the
differences undone with cumulative sums, every length is checked before it is used, and
a chunk stops decoding as soon as it exceeds what the file declares, so a hostile file
can neither hang the decoder (the loop runs at most once per input code) nor blow up
memory (output is capped at the declared lead length).
"""

from __future__ import annotations

import numpy as np

CODE_BITS = 10
_END_CODE = (1 << CODE_BITS) - 1  # 1023: no dictionary entry; ends a chunk
_MAX_ENTRIES = _END_CODE  # codes 0..1022
_CHUNK_HEADER_BYTES = 8  # int32 compressed size, 2 reserved bytes, int16 first sample
_DELTA_BIAS = 64
_WEIGHTS = 1 << np.arange(CODE_BITS - 1, -1, -1)


class XliError(ValueError):
    """What is wrong with an XLI stream, in words for an EcgDecodeError."""


def xli_decode(data: bytes, max_leads: int, n_samples: int) -> list[np.ndarray]:
    """The int64 samples of each lead chunk in `data`, at most `max_leads` chunks, each cut
    to `n_samples` (the length the file declares); XliError for a damaged stream."""
    leads: list[np.ndarray] = []
    offset = 0
    while offset < len(data) and len(leads) < max_leads:
        where = f"lead chunk {len(leads) + 1}"
        if len(data) - offset < _CHUNK_HEADER_BYTES:
            raise XliError(f"{where}: header cut short ({len(data) - offset} of 8 bytes)")
        size = int.from_bytes(data[offset : offset + 4], "little", signed=True)
        first = int.from_bytes(data[offset + 6 : offset + 8], "little", signed=True)
        offset += _CHUNK_HEADER_BYTES
        if not 0 < size <= len(data) - offset:
            raise XliError(
                f"{where}: declares {size} compressed bytes but {len(data) - offset} remain"
            )
        chunk = data[offset : offset + size]
        offset += size
        decoded = lzw_decode(chunk, max_bytes=2 * n_samples + 2, where=where)
        samples = undo_differences(split_bytes(decoded), first)
        if len(samples) < n_samples:
            raise XliError(
                f"{where}: {len(samples)} samples but durationperchannel declares {n_samples}"
            )
        leads.append(samples[:n_samples])
    return leads


def lzw_codes(chunk: bytes) -> np.ndarray:
    """The chunk's 10-bit codes, most significant bit first; a trailing partial code is
    padding."""
    bits = np.unpackbits(np.frombuffer(chunk, dtype=np.uint8))
    count = len(bits) // CODE_BITS
    return bits[: count * CODE_BITS].reshape(count, CODE_BITS) @ _WEIGHTS


def lzw_decode(chunk: bytes, max_bytes: int, where: str) -> bytes:
    """Classic LZW with a dictionary that stops growing at 1023 entries; XliError for a
    code the dictionary cannot have yet, or output beyond `max_bytes`."""
    table = [bytes([value]) for value in range(256)]
    out = bytearray()
    previous = b""
    for code in lzw_codes(chunk).tolist():
        if code == _END_CODE:
            break
        if code < len(table):
            entry = table[code]
        elif code == len(table) and previous:
            entry = previous + previous[:1]
        else:
            raise XliError(
                f"{where}: LZW code {code} is beyond the {len(table)}-entry dictionary (corrupt)"
            )
        if previous and len(table) < _MAX_ENTRIES:
            table.append(previous + entry[:1])
        out += entry
        if len(out) > max_bytes:
            raise XliError(
                f"{where}: expands beyond the {max_bytes} bytes the declared lead length "
                "allows (corrupt or hostile)"
            )
        previous = entry
    return bytes(out)


def split_bytes(decoded: bytes) -> np.ndarray:
    """XLI stores all high bytes, then all low bytes: sample i is (high[i] << 8) | low[i]."""
    raw = np.frombuffer(decoded + b"\x00" * (len(decoded) % 2), dtype=np.uint8)
    half = len(raw) // 2
    words = (raw[:half].astype(np.uint16) << 8) | raw[half:]
    return words.view(np.int16).astype(np.int64)


def undo_differences(values: np.ndarray, first: int) -> np.ndarray:
    """Undo XLI's second-difference prediction.

    The first two values are samples; from the third on, sample i is
    2*s[i-1] - s[i-2] - d[i], where d is the chunk's first sample for i = 2 and
    values[i-1] - 64 after that. So the first differences fall by d each step: two
    cumulative sums instead of a Python loop."""
    if len(values) < 3:
        return values.copy()
    steps = np.empty(len(values) - 2, dtype=np.int64)
    steps[0] = first
    steps[1:] = values[2:-1] - _DELTA_BIAS
    differences = (values[1] - values[0]) - np.cumsum(steps)
    samples = np.empty_like(values)
    samples[:2] = values[:2]
    samples[2:] = values[1] + np.cumsum(differences)
    return samples
