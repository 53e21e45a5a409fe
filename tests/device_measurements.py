"""The gateway's engine against the measurements a source device stored in the file."""

from __future__ import annotations

import pytest

import model


def assert_engine_agrees(ecg: model.Ecg, tolerances: dict[str, float]) -> None:
    """Each of the engine's measurements within its tolerance of the device's own value."""
    device = dict(ecg.metadata.device_measurements)
    ours = model.analyze(ecg).measurements
    for key, tolerance in tolerances.items():
        assert getattr(ours, key) == pytest.approx(device[key], abs=tolerance), key


def measurements_text(meta: model.EcgMetadata) -> str:
    """The device measurements as 'key=value ...', sorted: one comparable line per file."""
    return " ".join(f"{key}={value:g}" for key, value in sorted(meta.device_measurements))
