"""GE MUSE XML files as a held-out cart reference: GE 12SL's own measurements and
fiducial points against the engine's (bench/measure_accuracy.py prints the rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scores import fmt_value

import model
from model.beats import FS
from model.decode import read_muse_measurements
from model.measure import measure

# GE's RestingECGMeasurements element -> (label, engine measurement), in table order.
# GE's QTCorrected is Bazett's; GE gives no P duration, only POnset and POffset.
GE_KEYS = {
    "VentricularRate": ("Heart rate", "heart_rate_bpm"),
    "PRInterval": ("PR", "pr_ms"),
    "QRSDuration": ("QRS", "qrs_ms"),
    "QTInterval": ("QT", "qt_ms"),
    "QTCorrected": ("QTc", "qtc_bazett_ms"),
    "PAxis": ("P axis", "p_axis_deg"),
    "RAxis": ("QRS axis", "qrs_axis_deg"),
    "TAxis": ("T axis", "t_axis_deg"),
}


def ge_p_duration_ms(ge: dict[str, float], median_fs: float) -> float | None:
    """GE's P duration: its POffset - POnset, samples of its median beat at median_fs."""
    if "POnset" not in ge or "POffset" not in ge:
        return None
    return (ge["POffset"] - ge["POnset"]) * 1000 / median_fs


def run_muse(data: Path) -> list[tuple[str, str, float | None, float | None]]:
    """(file, quantity, GE, engine) for each GE MUSE XML file and measurement."""
    rows = []
    for path in sorted((data / "vendor" / "muse").glob("*.xml")):
        ecg = model.load(path)
        ge = read_muse_measurements(path)
        values = model.analyze(ecg).measurements
        for tag, (label, key) in GE_KEYS.items():
            rows.append((path.name, label, ge.get(tag), getattr(values, key)))
            if tag == "VentricularRate":
                ge_p = ge_p_duration_ms(ge, ecg.median_sampling_rate)
                rows.append((path.name, "P duration", ge_p, values.p_duration_ms))
    return rows


# GE's fiducial points on its own median beat (RestingECGMeasurements, samples at
# 500 Hz) -> the engine's global fiducial.
GE_EDGES = {
    "POnset": "p_on",
    "POffset": "p_off",
    "QOnset": "qrs_on",
    "QOffset": "qrs_off",
    "TOffset": "t_off",
}
GE_ALIGN_SEARCH = 60  # samples either side of the QRS fiducial's expected place


def ge_edge_differences(path: Path) -> dict[str, float | None]:
    """Engine minus GE per global edge (ms), on the same beat: the engine's median beat
    is laid onto GE's where their QRS complexes correlate best, and its fiducials
    compared with GE's own fiducial points (GE_EDGES). Shows which edge an
    interval difference comes from."""
    ge = read_muse_measurements(path)
    ecg = model.load(path)
    engine = measure(ecg)
    if ecg.median_beats is None or engine.fiducials is None or ecg.median_sampling_rate != FS:
        return {}
    offset = _median_offset(engine.median, ecg.median_beats, ge["QOnset"], engine.fiducials.qrs_on)
    differences: dict[str, float | None] = {}
    for tag, key in GE_EDGES.items():
        at = getattr(engine.fiducials, key)
        known = at is not None and tag in ge
        differences[tag] = (at - offset - ge[tag]) * 1000 / FS if known else None
    return differences


def _median_offset(engine: np.ndarray, ge: np.ndarray, ge_qrs_on: float, qrs_on: int) -> int:
    """Engine median sample minus GE median sample for the same moment: the lag that best
    correlates the two QRS complexes (120 ms from each one's QRS onset) over the leads."""
    width = round(0.12 * FS)
    start = int(ge_qrs_on)
    reference = ge[:, start : start + width]
    reference = reference - reference.mean(axis=1, keepdims=True)
    best, best_lag = -np.inf, qrs_on - start
    for lag in range(qrs_on - start - GE_ALIGN_SEARCH, qrs_on - start + GE_ALIGN_SEARCH + 1):
        window = engine[:, start + lag : start + lag + width]
        if start + lag < 0 or window.shape[1] < width:
            continue
        window = window - window.mean(axis=1, keepdims=True)
        norm = np.sqrt((window**2).sum() * (reference**2).sum())
        score = float((window * reference).sum() / norm)
        if score > best:
            best, best_lag = score, lag
    return best_lag


def ge_edge_rows(data: Path) -> list[list[str]]:
    paths = sorted((data / "vendor" / "muse").glob("*.xml"))
    found = {path.name: ge_edge_differences(path) for path in paths}
    rows = []
    for tag in GE_EDGES:
        cells = [fmt_value(diffs.get(tag)) for diffs in found.values()]
        rows.append(
            [
                "GE MUSE XML",
                f"{tag} on GE's median beat, engine − GE ms ({', '.join(found)})",
                str(len(found)),
                "; ".join(cells),
                "",
                "",
                "",
            ]
        )
    return rows
