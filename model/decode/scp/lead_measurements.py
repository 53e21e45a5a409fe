"""SCP-ECG section 10 (EN 1064:2005 5.12, "lead measurement block"): the recorder's own
per-lead measurements, kept as device measurements keyed 'lead_II_r_amplitude_uv'.

Layout: the number of leads (2 bytes), 2 manufacturer-specific bytes, then per lead its
lead ID (2), the byte length of its values (2) and that many bytes of signed 16-bit
values in the order of _VALUES; values past those (manufacturer extensions) are skipped.
"""

from __future__ import annotations

import struct
from pathlib import Path

from model.decode.leads import lead_from_code
from model.decode.scp.metadata import UNDEFINED
from model.decode.scp.sections import fail
from model.decode.scp.signal import MAX_LEADS

_HEADER_BYTES = 4
_LEAD_HEADER_BYTES = 4
# The standard's per-lead values in order; None marks a code, not a measurement (P and T
# morphology, recording quality), which is not kept.
_VALUES = (
    "p_duration_ms",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "q_duration_ms",
    "r_duration_ms",
    "s_duration_ms",
    "r_prime_duration_ms",
    "s_prime_duration_ms",
    "q_amplitude_uv",
    "r_amplitude_uv",
    "s_amplitude_uv",
    "r_prime_amplitude_uv",
    "s_prime_amplitude_uv",
    "j_amplitude_uv",
    "p_plus_amplitude_uv",
    "p_minus_amplitude_uv",
    "t_plus_amplitude_uv",
    "t_minus_amplitude_uv",
    "st_slope_uv_per_s",
    None,  # P morphology
    None,  # T morphology
    "isoelectric_qrs_onset_ms",
    "isoelectric_qrs_end_ms",
    "intrinsicoid_deflection_ms",
    None,  # quality code
    "st_j20_amplitude_uv",
    "st_j60_amplitude_uv",
    "st_j80_amplitude_uv",
    "st_j_rr16_amplitude_uv",  # J point + 1/16 of the average RR interval
    "st_j_rr8_amplitude_uv",  # J point + 1/8 of the average RR interval
)


def lead_measurements(path: Path, data: bytes | None) -> tuple[tuple[str, float], ...]:
    """Every lead's defined values; 'not computed' / 'rejected' markers are left out.
    A block that disagrees with the section's length is an error, not a guess."""
    if data is None:
        return ()
    if len(data) < _HEADER_BYTES:
        fail(path, "section 10", f"{len(data)} bytes: too short for the lead count (truncated)")
    count = struct.unpack_from("<H", data, 0)[0]
    if count > MAX_LEADS:
        fail(path, "section 10", f"{count} leads declared; at most {MAX_LEADS} expected")
    found: dict[str, float] = {}
    seen: set[int] = set()
    offset = _HEADER_BYTES
    for index in range(1, count + 1):
        if offset + _LEAD_HEADER_BYTES > len(data):
            fail(
                path,
                f"section 10 lead block {index}",
                f"starts at byte {offset}, the section has {len(data)} bytes "
                f"({count} leads declared; truncated)",
            )
        lead_id, length = struct.unpack_from("<HH", data, offset)
        offset += _LEAD_HEADER_BYTES
        if length % 2 or offset + length > len(data):
            fail(
                path,
                f"section 10 lead block {index}",
                f"length {length} is odd or runs past the section's {len(data)} bytes",
            )
        if lead_id in seen:
            fail(path, f"section 10 lead block {index}", f"lead ID {lead_id} appears twice")
        seen.add(lead_id)
        name = lead_from_code("SCPECG", f"5.6.3-9-{lead_id}") or f"id{lead_id}"
        n_values = min(length // 2, len(_VALUES))
        values = struct.unpack_from(f"<{n_values}h", data, offset)
        for key, value in zip(_VALUES, values, strict=False):
            if key is not None and value not in UNDEFINED:
                found[f"lead_{name}_{key}"] = value
        offset += length
    return tuple(found.items())
