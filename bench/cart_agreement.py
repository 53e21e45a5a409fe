"""The engine against the global measurements that carts stored in their own files.

Issue 24 made the carts the primary reference for the intervals, with the spread
between commercial carts as the goal (75th percentile of the absolute differences: 4-6
ms PR, 4-8 ms QRS, 6-10 ms QT). Beside GE's two MUSE files (`measure_accuracy.py`, held
out), three more vendor files carry their device's own measurements, which the decoders
expose as `EcgMetadata.device_measurements`: a Philips PageWriter TC and a Philips
HeartStart MRx (Sierra XML) and a Mortara cart (the HL7 aECG ballot example). These
three were looked at while tuning the P onset (docs/measurement.md 3.2); the GE files
were not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scores import fmt_value

import model

# File under the data folder -> the device that measured it.
CART_FILES = {
    "vendor/sierra/2020-5-18_15-48-11.xml": "Philips PageWriter TC",
    "vendor/sierra/129DYPRG.XML": "Philips HeartStart MRx",
    "vendor/aecg/fda_example_aecg.xml": "Mortara",
}
# Row label -> the measurement key the engine and the decoders share.
CART_KEYS = {
    "Heart rate": "heart_rate_bpm",
    "P duration": "p_duration_ms",
    "PR": "pr_ms",
    "QRS": "qrs_ms",
    "QT": "qt_ms",
    "P axis": "p_axis_deg",
    "QRS axis": "qrs_axis_deg",
    "T axis": "t_axis_deg",
}
# The spread between commercial carts (issue 24): 75th percentile of the absolute
# differences, lower and upper end of the range, ms.
CART_SPREAD_MS = {"PR": (4, 6), "QRS": (4, 8), "QT": (6, 10)}

# (file, row label, the cart's value, the engine's value)
CartValue = tuple[str, str, float | None, float | None]


def run_carts(data: Path) -> list[CartValue]:
    """The engine's and each cart's value of every CART_KEYS measurement, per file."""
    values: list[CartValue] = []
    for relative in CART_FILES:
        path = data / relative
        ecg = model.load(path)
        measured = model.analyze(ecg).measurements
        for label, key in CART_KEYS.items():
            values.append(
                (path.name, label, ecg.metadata.device_measurement(key), getattr(measured, key))
            )
    return values


def cart_rows(values: list[CartValue]) -> list[list[str]]:
    """One row per measurement: the engine's value against each cart's, per file."""
    files = list(dict.fromkeys(name for name, *_ in values))
    devices = ", ".join(CART_FILES[_relative(name)] for name in files)
    rows = []
    for label in CART_KEYS:
        cells = []
        for name in files:
            cart, engine = next((c, e) for n, lab, c, e in values if n == name and lab == label)
            diff = "" if cart is None or engine is None else f" (Δ {engine - cart:+.0f})"
            cells.append(f"{fmt_value(engine)} vs {fmt_value(cart)}{diff}")
        quantity = f"{label}, engine vs cart ({devices})"
        rows.append(["Other carts", quantity, str(len(files)), "; ".join(cells), "", "", ""])
    return rows


def spread_rows(values: list[CartValue], part: str, against: str) -> list[list[str]]:
    """75th percentile of |engine - cart| per interval against the spread between carts."""
    rows = []
    for label, (low, high) in CART_SPREAD_MS.items():
        diffs = [abs(e - c) for _, lab, c, e in values if lab == label and None not in (c, e)]
        if not diffs:
            continue
        p75 = float(np.percentile(diffs, 75))
        rows.append(
            [
                part,
                f"{label}: 75th percentile of |engine − {against}| ms",
                str(len(diffs)),
                f"{p75:.1f}",
                "",
                f"≤ {high} (carts' spread {low}–{high})",
                "yes" if p75 <= high else "no",
            ]
        )
    return rows


def _relative(name: str) -> str:
    return next(relative for relative in CART_FILES if relative.endswith("/" + name))
