"""WFDB records from PhysioNet databases decode to calibrated, standard-named leads."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from model import STANDARD_LEADS, load

PTBXL_500 = "ptbxl/records500/00000/00001_hr"
PTBXL_100 = "ptbxl/records100/00000/00001_lr"


def _assert_einthoven(ecg, tolerance_mv: float) -> None:
    """III = II - I and aVR + aVL + aVF = 0 hold for any correctly named 12-lead set,
    so a lead put under the wrong name, or scaled wrongly, fails here."""

    def lead(name: str) -> np.ndarray:
        return ecg.lead(name).astype(np.float64)

    assert np.abs(lead("III") - (lead("II") - lead("I"))).max() < tolerance_mv
    assert np.abs(lead("aVR") + lead("aVL") + lead("aVF")).max() < tolerance_mv
    assert np.abs(lead("aVR") + (lead("I") + lead("II")) / 2).max() < tolerance_mv


def _assert_plausible_amplitudes(ecg) -> None:
    """Physiological size: lead II spans 0.3-6 mV peak to peak, nothing beyond 10 mV."""
    assert np.isfinite(ecg.signal).all()
    assert 0.3 < np.ptp(ecg.lead("II")) < 6.0
    assert np.abs(ecg.signal).max() < 10.0


def _header_scaled(record: Path) -> dict[str, np.ndarray]:
    """The record decoded by hand from its header (format 16, gain(baseline)/mV) and raw
    int16 samples, independently of the wfdb package."""
    header = record.with_suffix(".hea").read_text().splitlines()
    lines = [line for line in header if line and not line.startswith("#")]
    n_signals = int(lines[0].split()[1])
    raw = np.fromfile(record.with_suffix(".dat"), dtype="<i2").reshape(-1, n_signals)
    leads = {}
    for index, line in enumerate(lines[1 : 1 + n_signals]):
        fields = line.split()
        gain, baseline = fields[2].split("/")[0].rstrip(")").split("(")
        leads[fields[-1]] = (raw[:, index] - float(baseline)) / float(gain)
    return leads


def test_ptbxl_100hz_record(shared_data):
    ecg = load(shared_data / PTBXL_100)
    assert ecg.lead_names == STANDARD_LEADS
    assert ecg.sampling_rate == 100
    assert ecg.signal.shape == (12, 1000)
    assert ecg.metadata.source_format == "wfdb"
    _assert_plausible_amplitudes(ecg)
    _assert_einthoven(ecg, tolerance_mv=0.005)


def test_ptbxl_500hz_record_is_the_same_ecg_as_its_100hz_version(shared_data):
    high = load(shared_data / PTBXL_500)
    low = load(shared_data / PTBXL_100)
    assert high.sampling_rate == 500 and high.signal.shape == (12, 5000)
    assert high.lead_names == low.lead_names == STANDARD_LEADS
    _assert_plausible_amplitudes(high)
    _assert_einthoven(high, tolerance_mv=0.005)
    # PTB-XL's 100 Hz files are the 500 Hz recordings downsampled (with filtering), so
    # every fifth sample follows the low-rate trace closely in every lead.
    for index in range(12):
        assert np.corrcoef(high.signal[index, ::5], low.signal[index])[0, 1] > 0.95


def test_ludb_lower_case_names_and_per_lead_gains(shared_data):
    record = shared_data / "ludb/data/1"
    ecg = load(record)
    assert ecg.lead_names == STANDARD_LEADS
    assert (ecg.sampling_rate, ecg.signal.shape) == (500, (12, 5000))
    assert (ecg.metadata.patient_age, ecg.metadata.patient_sex) == ("051Y", "F")
    # LUDB gives each lead its own gain and baseline ('1716(6)/mV'); names are 'i', 'avr'...
    expected = _header_scaled(record)
    ludb_names = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
    assert tuple(expected) == ludb_names
    for ludb_name, name in zip(ludb_names, STANDARD_LEADS, strict=True):
        np.testing.assert_allclose(ecg.lead(name), expected[ludb_name], atol=1e-6)


def test_cinc2021_mat_signals_by_any_path_form(shared_data):
    by_name = load(shared_data / "cinc2021/E07500")
    by_header = load(shared_data / "cinc2021/E07500.hea")
    by_signal_file = load(shared_data / "cinc2021/E07500.mat")
    for ecg in (by_header, by_signal_file):
        np.testing.assert_array_equal(ecg.signal, by_name.signal)
    assert by_name.lead_names == STANDARD_LEADS
    assert (by_name.sampling_rate, by_name.signal.shape) == (500, (12, 5000))
    assert (by_name.metadata.patient_age, by_name.metadata.patient_sex) == ("078Y", "M")
    _assert_plausible_amplitudes(by_name)
    _assert_einthoven(by_name, tolerance_mv=0.005)


def test_cinc2021_lower_case_mv_unit(shared_data):
    ecg = load(shared_data / "cinc2021/HR06000")  # header says '1000.0(0)/mv'
    assert ecg.lead_names == STANDARD_LEADS
    assert ecg.metadata.patient_sex == "F"
    _assert_plausible_amplitudes(ecg)


def test_ptb_diagnostic_record_keeps_frank_leads_after_the_twelve(shared_data):
    ecg = load(shared_data / "wfdb-samples/s0010_re.hea")
    assert ecg.lead_names == STANDARD_LEADS + ("X", "Y", "Z")
    assert (ecg.sampling_rate, ecg.signal.shape) == (1000, (15, 38400))
    assert (ecg.metadata.patient_age, ecg.metadata.patient_sex) == ("081Y", "F")
    _assert_einthoven(ecg, tolerance_mv=0.005)


def test_mit_bih_two_lead_record_decodes_what_is_there(shared_data):
    ecg = load(shared_data / "wfdb-samples/100")
    # MLII is the modified (torso-electrode) lead II of Holter recordings, not lead II;
    # it keeps its own name, and no limb lead is derived from it.
    assert ecg.lead_names == ("V5", "MLII")
    assert ecg.sampling_rate == 360
    assert ecg.signal.shape == (2, 650000)
    assert 0.3 < np.ptp(ecg.lead("MLII")[:3600]) < 6.0


def test_unknown_channel_names_are_kept_not_dropped(shared_data):
    ecg = load(shared_data / "wfdb-samples/test01_00s.dat")
    assert ecg.lead_names == ("ECG 1", "ECG 2", "ECG 3", "ECG 4")
    assert (ecg.metadata.patient_age, ecg.metadata.patient_sex) == ("025Y", "M")


def test_shuffled_header_order_is_put_in_standard_order(shared_data):
    # muse-af lists I, II, III, AVF, AVL, AVR, V1...: a name mix-up would break Einthoven.
    ecg = load(shared_data / "wfdb-samples/muse-af")
    assert ecg.lead_names == STANDARD_LEADS
    _assert_einthoven(ecg, tolerance_mv=0.01)
    meta = ecg.metadata
    assert meta.acquisition_time == datetime(2010, 1, 4, 11, 10, 4)
    assert (meta.patient_id, meta.patient_age, meta.patient_sex) == ("074747981", "071Y", "F")


@pytest.mark.parametrize("suffix", ["", ".hea", ".dat"])
def test_record_path_forms(shared_data, suffix):
    path = shared_data / f"{PTBXL_500}{suffix}"
    assert load(path).signal.shape == (12, 5000)


@pytest.mark.parametrize(
    "first_bytes",
    [b"\xff\xfe<\x00", b"\x08\x00\x05\x00", b"<\x00<\x00"],  # like a BOM, DICOM, XML
)
def test_signal_file_is_wfdb_whatever_its_first_samples_look_like(
    shared_data, tmp_path, first_bytes
):
    source = shared_data / "ludb/data/1"
    (tmp_path / "1.hea").write_bytes(source.with_suffix(".hea").read_bytes())
    data = source.with_suffix(".dat").read_bytes()
    (tmp_path / "1.dat").write_bytes(first_bytes + data[len(first_bytes) :])
    ecg = load(tmp_path / "1.dat")
    first_raw = int.from_bytes(first_bytes[:2], "little", signed=True)
    assert ecg.lead("I")[0] == pytest.approx((first_raw - 6) / 1716)  # header: 1716(6)/mV
    np.testing.assert_array_equal(ecg.signal[:, 1:], load(source).signal[:, 1:])
