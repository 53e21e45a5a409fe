"""SCP-ECG samples: lead definitions (section 3), QRS locations (section 4), the encoded
reference beat (section 5) and rhythm (section 6), undone in the standard's order:
Huffman, then first or second differences, then the reference beat added back inside
each subtraction zone.

Also the Healforce handheld layout (see ../shared/data/vendor/scp/README.md): one
interleaved stream for all leads, not Huffman-coded, four 12-bit words packed in three
16-bit words with a 10-bit offset-binary sample and two beat-marker bits each, and the
sampling rate (Hz) where the standard has the sample interval (us). It is recognised by
its structure: section 6 holds one stream although section 3 declares several leads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.decode.acquisition import MAX_SAMPLES_PER_LEAD
from model.decode.leads import lead_from_code
from model.decode.scp.huffman import HuffmanError, decode_stream, lookups, read_tables
from model.decode.scp.sections import ScpFile, fail

MAX_LEADS = 15  # section 3: the standard's lead set plus Frank leads
MAX_AVM_NV = 1_000_000  # 1 mV per step would leave a few steps per beat
HEALFORCE_STEP = "Healforce packed samples"
_EINTHOVEN = ("I", "II", "III")


@dataclass(frozen=True)
class Leads:
    names: tuple[str, ...]
    first: int  # first sample number (1-based) of the lead set
    n_samples: int
    reference_subtracted: bool


@dataclass(frozen=True)
class Samples:
    """Decoded leads in mV (leads x samples) and their sampling rate."""

    signal: np.ndarray
    rate: float
    names: tuple[str, ...]
    median: np.ndarray | None = None
    median_rate: float | None = None


def decode_samples(scp: ScpFile) -> Samples:
    path = scp.path
    section3, section6 = scp.data(3), scp.data(6)
    if section3 is None or section6 is None:
        fail(path, "sections 3 and 6", "the record has no lead definition or rhythm data")
    leads = read_leads(path, section3)
    if _is_healforce(section6, len(leads.names)):
        scp.warnings.append(f"{HEALFORCE_STEP}: not EN 1064 compliant, read as Healforce writes")
        return _healforce(path, section6, leads)
    tables = _tables(scp)
    rhythm, rate = _encoded(path, section6, "section 6", len(leads.names), leads.n_samples, tables)
    median = median_rate = None
    if scp.data(5) is not None and scp.data(4) is not None:
        beat_ms, fiducial, zones = _qrs_locations(path, scp.data(4))
        header = struct.unpack_from("<H", scp.data(5), 2)[0] if len(scp.data(5)) >= 4 else 0
        beat_samples = round(beat_ms * 1000 / header) if header else 0
        median, median_rate = _encoded(
            path, scp.data(5), "section 5", len(leads.names), beat_samples, tables
        )
        if leads.reference_subtracted:
            if median_rate != rate:
                fail(
                    path,
                    "section 5",
                    f"reference beat at {median_rate:g} Hz, rhythm at "
                    f"{rate:g} Hz: bimodal compression is not supported",
                )
            _add_reference_beat(rhythm, median, fiducial, zones, leads.first)
    return Samples(rhythm, rate, leads.names, median, median_rate)


def read_leads(path: Path, data: bytes) -> Leads:
    if len(data) < 2:
        fail(path, "section 3", "too short for a lead count")
    count, flags = data[0], data[1]
    if not 1 <= count <= MAX_LEADS:
        fail(path, "section 3", f"{count} leads declared; 1-{MAX_LEADS} expected")
    entries = (len(data) - 2) // 9
    definitions = [struct.unpack_from("<IIB", data, 2 + 9 * i) for i in range(min(entries, count))]
    if not definitions:
        fail(path, "section 3", f"declares {count} leads but defines none")
    starts = {start for start, _, _ in definitions}
    ends = {end for _, end, _ in definitions}
    if len(starts) != 1 or len(ends) != 1:
        fail(path, "section 3", "leads of different start or end samples are not supported")
    first, last = starts.pop(), ends.pop()
    n_samples = last - first + 1
    if not 1 <= n_samples <= MAX_SAMPLES_PER_LEAD:
        fail(
            path,
            "section 3",
            f"samples {first}-{last}: {n_samples} is not 1-{MAX_SAMPLES_PER_LEAD}",
        )
    names = [lead_from_code("SCPECG", f"5.6.3-9-{lead_id}") for _, _, lead_id in definitions]
    names = [name or f"Channel {i + 1}" for i, name in enumerate(names)]
    names += [f"Channel {i + 1}" for i in range(len(names), count)]  # defined too few
    return Leads(tuple(names), first, n_samples, bool(flags & 0x01))


def _tables(scp: ScpFile) -> list:
    data = scp.data(2)
    try:
        return lookups(read_tables(data)) if data is not None else []
    except HuffmanError as exc:
        fail(scp.path, "section 2", str(exc))
    return []


def _encoded(
    path: Path, data: bytes, where: str, n_leads: int, n_samples: int, tables: list
) -> tuple[np.ndarray, float]:
    """Sections 5 and 6 share a layout: AVM (nV), sample interval (us), difference
    encoding, a reserved/bimodal byte, one byte count per lead, the lead streams."""
    header = 6 + 2 * n_leads
    if len(data) < header:
        fail(path, where, f"{len(data)} bytes cannot hold the header for {n_leads} leads")
    avm, interval, difference, bimodal = struct.unpack_from("<HHBB", data, 0)
    if not 0 < avm <= MAX_AVM_NV:
        fail(path, f"{where} amplitude multiplier", f"{avm} nV per step is not plausible")
    if interval == 0:
        fail(path, f"{where} sample interval", "0 us")
    if where == "section 6" and bimodal:
        fail(path, "section 6", "bimodal compression is not supported")
    if difference not in (0, 1, 2):
        fail(path, f"{where} difference encoding", f"{difference} is not 0, 1 or 2")
    if not 1 <= n_samples <= MAX_SAMPLES_PER_LEAD:
        fail(path, where, f"{n_samples} samples per lead is not 1-{MAX_SAMPLES_PER_LEAD}")
    counts = struct.unpack_from(f"<{n_leads}H", data, 6)
    if header + sum(counts) > len(data):
        fail(
            path,
            where,
            f"lead byte counts add up to {sum(counts)} but {len(data) - header} "
            "bytes follow (truncated or corrupt)",
        )
    leads, offset = [], header
    for number, count in enumerate(counts, start=1):
        stream = data[offset : offset + count]
        offset += count
        try:
            values = (
                decode_stream(stream, tables, n_samples) if tables else _raw16(stream, n_samples)
            )
        except HuffmanError as exc:
            fail(path, f"{where} lead {number}", str(exc))
        leads.append(_undo_differences(values, difference))
    return np.stack(leads) * (avm / 1e6), 1e6 / interval


def _raw16(stream: bytes, n_samples: int) -> np.ndarray:
    if len(stream) < 2 * n_samples:
        raise HuffmanError(f"{len(stream)} bytes hold fewer than {n_samples} 16-bit samples")
    return np.frombuffer(stream[: 2 * n_samples], dtype="<i2").astype(np.int64)


def _undo_differences(values: np.ndarray, order: int) -> np.ndarray:
    if order == 1:
        return np.cumsum(values)
    if order == 2 and len(values) > 2:
        # x[n] = d[n] + 2 x[n-1] - x[n-2]: the first differences are a running sum
        first = np.empty_like(values)
        first[0], first[1] = values[0], values[1] - values[0]
        first[2:] = values[2:]
        steps = np.cumsum(first[1:])
        return np.concatenate([values[:1], values[0] + np.cumsum(steps)])
    return values


def _qrs_locations(path: Path, data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Reference beat length (ms), its fiducial sample, and (start, fiducial, end) of every
    type-0 QRS's subtraction zone."""
    if len(data) < 6:
        fail(path, "section 4", "too short for its header")
    beat_ms, fiducial, count = struct.unpack_from("<HHH", data, 0)
    if 6 + 14 * count > len(data):
        fail(path, "section 4", f"{count} QRS complexes declared, room for {(len(data) - 6) // 14}")
    zones = []
    for i in range(count):
        kind, start, center, end = struct.unpack_from("<HIII", data, 6 + 14 * i)
        if kind == 0 and start and end >= start:
            zones.append((start, center, end))
    return beat_ms, fiducial, zones


def _add_reference_beat(
    rhythm: np.ndarray, beat: np.ndarray, fiducial: int, zones: list, first: int
) -> None:
    """Inside each zone, sample s (1-based) gets reference sample s - center + fiducial."""
    n, length = rhythm.shape[1], beat.shape[1]
    for start, center, end in zones:
        samples = np.arange(max(start, first), min(end, first + n - 1) + 1)
        beat_index = samples - center + fiducial - 1
        keep = (beat_index >= 0) & (beat_index < length)
        rhythm[:, samples[keep] - first] += beat[:, beat_index[keep]]


def _is_healforce(data: bytes, n_leads: int) -> bool:
    if n_leads < 2 or len(data) < 8:
        return False
    one_stream = struct.unpack_from("<H", data, 6)[0]
    return 8 + one_stream <= len(data) < 6 + 2 * n_leads + one_stream


def _healforce(path: Path, data: bytes, leads: Leads) -> Samples:
    avm, rate_hz = struct.unpack_from("<HH", data, 0)
    count = struct.unpack_from("<H", data, 6)[0]
    n_leads = len(leads.names)
    if not 0 < avm <= MAX_AVM_NV:
        fail(path, "section 6 amplitude multiplier", f"{avm} nV per step is not plausible")
    words = np.frombuffer(data[8 : 8 + count - count % 6], dtype="<u2").reshape(-1, 3)
    words = words.astype(np.int64)
    fourth = (
        ((words[:, 0] & 0x3C00) >> 2)
        | ((words[:, 1] & 0x3C00) >> 6)
        | ((words[:, 2] & 0x3C00) >> 10)
    )
    packed = np.concatenate([words, fourth[:, None]], axis=1).reshape(-1)
    usable = len(packed) // n_leads
    if usable < leads.n_samples:
        fail(
            path,
            "section 6",
            f"{usable} samples per lead where section 3 declares {leads.n_samples} (truncated)",
        )
    samples = ((packed[: leads.n_samples * n_leads] & 0x3FF) - 512).reshape(-1, n_leads).T
    signal = samples * (avm / 1e6)
    return Samples(signal, float(rate_hz), _healforce_names(leads, signal))


def _healforce_names(leads: Leads, signal: np.ndarray) -> tuple[str, ...]:
    """Three channels that obey Einthoven's law (III = II - I) are leads I, II, III; the
    lead IDs these files give are not a lead per channel."""
    if len(leads.names) == 3:
        residual = signal[2] - (signal[1] - signal[0])
        if np.std(residual) < 0.2 * np.std(signal[2]):
            return _EINTHOVEN
    return tuple(f"Channel {i + 1}" for i in range(len(leads.names)))
