"""Limb leads derived from any two of I, II and III (model.ecg.derive_limb_leads), as the
decoders and the measurements use them, against leads recorded or projected independently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from model import load
from model.ecg import STANDARD_LEADS, Ecg, derive_limb_leads
from model.measure import standard_twelve
from model.measure.amplitudes import LIMB_LEAD_VECTORS

LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
PAIRS = (("I", "II"), ("I", "III"), ("II", "III"))
PRECORDIAL = ("V1", "V2", "V3", "V4", "V5", "V6")
PTBXL_1 = Path("ptbxl/records500/00000/00001_hr")


def _projected_limb_leads(n: int = 2000) -> dict[str, np.ndarray]:
    """Six limb leads projected from a wandering frontal heart vector (mV) onto the
    hexaxial reference system's directions and gains: a construction independent of
    the Einthoven and Goldberger formulas under test."""
    rng = np.random.default_rng(0)
    t = np.arange(n) / 500.0
    x = np.sin(2 * np.pi * 1.1 * t) + 0.3 * np.cumsum(rng.normal(0, 0.02, n))
    y = 0.8 * np.cos(2 * np.pi * 0.7 * t + 0.4) + 0.3 * np.cumsum(rng.normal(0, 0.02, n))
    return {
        name: gain * (np.cos(np.radians(angle)) * x + np.sin(np.radians(angle)) * y)
        for name, (angle, gain) in LIMB_LEAD_VECTORS.items()
    }


@pytest.mark.parametrize("pair", PAIRS, ids="+".join)
def test_each_pair_gives_the_other_limb_leads(pair: tuple[str, str]) -> None:
    projected = _projected_limb_leads()
    filled = derive_limb_leads({name: projected[name] for name in pair})
    assert set(filled) == set(LIMB)
    for name in LIMB:
        np.testing.assert_allclose(filled[name], projected[name], atol=1e-12, err_msg=name)


def test_recorded_leads_are_kept_and_too_few_derive_nothing() -> None:
    projected = _projected_limb_leads()
    recorded = {"I": projected["I"], "II": projected["II"], "aVF": np.zeros(5)}
    filled = derive_limb_leads(recorded)
    assert filled["aVF"] is recorded["aVF"]
    assert set(filled) == set(LIMB)
    assert derive_limb_leads({"I": projected["I"], "aVR": projected["aVR"]}).keys() == {
        "I",
        "aVR",
    }


@pytest.mark.parametrize("pair", PAIRS, ids="+".join)
def test_measurements_derive_from_each_pair(pair: tuple[str, str]) -> None:
    """standard_twelve fills the limb leads an ECG lacks from the pair it has."""
    projected = _projected_limb_leads()
    precordial = np.zeros((len(PRECORDIAL), projected["I"].size))
    ecg = Ecg(
        signal=np.vstack([projected[pair[0]], projected[pair[1]], precordial]),
        sampling_rate=500.0,
        lead_names=(*pair, *PRECORDIAL),
    )
    signal, present = standard_twelve(ecg)
    assert present.all()
    for i, name in enumerate(LIMB):
        np.testing.assert_allclose(signal[i], projected[name], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("pair", PAIRS, ids="+".join)
def test_decoded_pair_gives_the_recorded_limb_leads(
    shared_data: Path, tmp_path: Path, pair: tuple[str, str]
) -> None:
    """PTB-XL 1 written again with two limb leads and V1-V6: the decoder derives the
    other four, which match the cart's recorded ones within its 1 µV resolution."""
    full = load(shared_data / PTBXL_1)
    kept = (*pair, *PRECORDIAL)
    wfdb.wrsamp(
        "pair",
        fs=full.sampling_rate,
        units=["mV"] * len(kept),
        sig_name=list(kept),
        p_signal=np.stack([full.lead(name) for name in kept], axis=1).astype(np.float64),
        fmt=["16"] * len(kept),
        adc_gain=[1000.0] * len(kept),
        baseline=[0] * len(kept),
        write_dir=str(tmp_path),
    )
    decoded = load(tmp_path / "pair")
    assert decoded.lead_names == STANDARD_LEADS
    for name in LIMB:
        recorded = full.lead(name).astype(np.float64)
        derived = decoded.lead(name).astype(np.float64)
        assert np.abs(derived - recorded).max() < 0.003, name
