"""DICOM ECG waveforms: real vendor objects, the project's writer, and dcmtk's conversions."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import examples
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from model import STANDARD_LEADS, Ecg, load
from model.decode.leads import lead_from_text
from model.dicom_write import (
    AMBULATORY_ECG_STORAGE,
    GENERAL_ECG_STORAGE,
    TWELVE_LEAD_ECG_STORAGE,
    ecg_to_dicom,
)

VENDOR_DCM = "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm"
PTBXL_500 = "ptbxl/records500/00000/00001_hr"
HEMODYNAMIC_STORAGE = "1.2.840.10008.5.1.4.1.1.9.2.1"
needs_dcmtk = pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmtk not installed")


def _raw_codes(group: Dataset) -> np.ndarray:
    """(samples x channels) int16 straight from WaveformData, independently of the decoder."""
    data = np.frombuffer(group.WaveformData, dtype="<i2")
    return data.reshape(int(group.NumberOfWaveformSamples), int(group.NumberOfWaveformChannels))


def _written(ecg, path: Path) -> Path:
    ecg_to_dicom(ecg).save_as(path, enforce_file_format=True)
    return path


def _max_step_mv(ds: Dataset, group_index: int = 0) -> float:
    channels = ds.WaveformSequence[group_index].ChannelDefinitionSequence
    return max(float(ch.ChannelSensitivity) for ch in channels) / 1000


def _keep_channels(ds: Dataset, keep: list[int]) -> None:
    """Reduce the rhythm group to the channels at `keep` (data and definitions)."""
    group = ds.WaveformSequence[0]
    codes = _raw_codes(group)[:, keep]
    group.ChannelDefinitionSequence = Sequence([group.ChannelDefinitionSequence[i] for i in keep])
    group.NumberOfWaveformChannels = len(keep)
    group.WaveformData = np.ascontiguousarray(codes).astype("<i2").tobytes()


def test_vendor_ecg_converted_from_ge_muse(shared_data):
    ds = pydicom.dcmread(shared_data / VENDOR_DCM)
    ecg = load(shared_data / VENDOR_DCM)
    assert ecg.lead_names == STANDARD_LEADS
    assert (ecg.sampling_rate, ecg.signal.shape) == (500, (12, 5000))
    assert ecg.median_beats.shape == (12, 600) and ecg.median_sampling_rate == 500
    # Sensitivity 1 uV x correction 4.88, channel order I, II, III, aVR... as in the file
    raw = _raw_codes(ds.WaveformSequence[0])
    np.testing.assert_allclose(ecg.signal, raw.T * 4.88e-3, atol=1e-6)
    assert 0.3 < ecg.lead("II").max() < 5.0  # R waves in the millivolt range
    meta = ecg.metadata
    assert meta.source_format == "dicom"
    assert meta.sop_class_uid == GENERAL_ECG_STORAGE
    assert meta.sop_instance_uid == ds.SOPInstanceUID
    assert (meta.device_manufacturer, meta.device_model) == ("GE Healthcare", "MAC P")
    assert (meta.patient_sex, meta.patient_age, meta.modality) == ("M", "011Y", "ECG")
    assert meta.acquisition_time == datetime(2024, 1, 1, 0, 0, 0)
    assert meta.filters == "0.56-150 Hz, notch 50 Hz"


def test_mortara_ecg_with_scpecg_codes_and_median_beat_group():
    """pydicom's example file: a real Mortara ELI 250 12-lead ECG, SCPECG-coded sources
    ('Lead I (Einthoven)'), 1.25 uV per bit, a RHYTHM and a MEDIAN BEAT group at 1 kHz."""
    path = examples.get_path("waveform")
    ds = pydicom.dcmread(path)
    ecg = load(path)
    assert ecg.lead_names == STANDARD_LEADS
    assert (ecg.sampling_rate, ecg.signal.shape) == (1000, (12, 10000))
    assert ecg.median_beats.shape == (12, 1200) and ecg.median_sampling_rate == 1000
    rhythm_codes = _raw_codes(ds.WaveformSequence[0])
    np.testing.assert_allclose(ecg.signal, rhythm_codes.T * 1.25e-3, atol=1e-6)
    np.testing.assert_allclose(
        ecg.median_beats, _raw_codes(ds.WaveformSequence[1]).T * 1.25e-3, atol=1e-6
    )
    assert ecg.metadata.filters == "0.05-300 Hz"
    assert ecg.metadata.device_manufacturer == "Mortara Instrument, Inc."


def test_rhythm_group_found_by_label_whatever_the_order(shared_data, tmp_path):
    ds = pydicom.dcmread(shared_data / VENDOR_DCM)
    ds.WaveformSequence = Sequence(list(reversed(ds.WaveformSequence)))
    ds.save_as(tmp_path / "reversed.dcm")
    ecg = load(tmp_path / "reversed.dcm")
    reference = load(shared_data / VENDOR_DCM)
    np.testing.assert_array_equal(ecg.signal, reference.signal)
    np.testing.assert_array_equal(ecg.median_beats, reference.median_beats)


def test_without_labels_the_longest_group_is_the_rhythm(shared_data, tmp_path):
    ds = pydicom.dcmread(shared_data / VENDOR_DCM)
    ds.WaveformSequence = Sequence(list(reversed(ds.WaveformSequence)))
    for group in ds.WaveformSequence:
        del group.MultiplexGroupLabel
    ds.save_as(tmp_path / "unlabelled.dcm")
    ecg = load(tmp_path / "unlabelled.dcm")
    assert ecg.signal.shape == (12, 5000)
    assert ecg.median_beats is None  # an unlabelled group is not known to be median beats


def test_detected_by_content_without_preamble_or_extension(shared_data, tmp_path):
    reference = load(shared_data / VENDOR_DCM)
    with_meta = tmp_path / "no-preamble"
    with_meta.write_bytes((shared_data / VENDOR_DCM).read_bytes()[132:])  # preamble + 'DICM' cut
    ds = pydicom.dcmread(shared_data / VENDOR_DCM)
    ds.preamble = None
    del ds.file_meta
    bare = tmp_path / "bare-dataset.bin"
    ds.save_as(bare, implicit_vr=True, little_endian=True)
    assert bare.read_bytes()[:2] == b"\x08\x00"  # starts straight with (0008,0005)
    for path in (with_meta, bare):
        np.testing.assert_array_equal(load(path).signal, reference.signal)


@needs_dcmtk
@pytest.mark.parametrize("option", ["+ti", "+tb", "+td"])  # implicit LE, explicit BE, deflated
def test_transfer_syntaxes_written_by_dcmtk(shared_data, tmp_path, option):
    converted = tmp_path / "converted.dcm"
    subprocess.run(["dcmconv", option, str(shared_data / VENDOR_DCM), str(converted)], check=True)
    np.testing.assert_array_equal(load(converted).signal, load(shared_data / VENDOR_DCM).signal)


@pytest.mark.parametrize("record", [PTBXL_500, "ludb/data/1"])
def test_wfdb_round_trip_through_12_lead_dicom(shared_data, tmp_path, record):
    source = load(shared_data / record)
    path = _written(source, tmp_path / "ecg.dcm")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == TWELVE_LEAD_ECG_STORAGE
    decoded = load(path)
    assert decoded.lead_names == source.lead_names == STANDARD_LEADS
    assert decoded.sampling_rate == source.sampling_rate
    # Within half a quantisation step (rounding), i.e. well within one step.
    assert np.abs(decoded.signal - source.signal).max() <= _max_step_mv(ds) / 2 + 1e-6
    assert decoded.metadata.patient_age == source.metadata.patient_age
    assert decoded.metadata.patient_sex == source.metadata.patient_sex
    assert decoded.metadata.sop_instance_uid == ds.SOPInstanceUID


def test_ptbxl_is_lossless_at_one_microvolt(shared_data, tmp_path):
    """PTB-XL stores 1000 adu/mV, so 1 uV per bit reproduces it exactly."""
    source = load(shared_data / PTBXL_500)
    decoded = load(_written(source, tmp_path / "ecg.dcm"))
    np.testing.assert_allclose(decoded.signal, source.signal, atol=1e-6)


def test_records_outside_12_lead_constraints_get_the_iod_that_fits(shared_data, tmp_path):
    cases = {
        "ptbxl/records100/00000/00001_lr": AMBULATORY_ECG_STORAGE,  # 100 Hz
        "wfdb-samples/s0010_re": GENERAL_ECG_STORAGE,  # 15 leads, 38400 samples
        "wfdb-samples/100": GENERAL_ECG_STORAGE,  # 650000 samples, MLII
    }
    for record, sop_class in cases.items():
        source = load(shared_data / record)
        path = _written(source, tmp_path / "ecg.dcm")
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == sop_class, record
        decoded = load(path)
        assert decoded.lead_names == source.lead_names, record
        assert np.abs(decoded.signal - source.signal).max() <= _max_step_mv(ds) / 2 + 1e-6


def test_median_beats_and_demographics_round_trip(shared_data, tmp_path):
    source = load(shared_data / "vendor/muse/muse-sinus.xml")
    decoded = load(_written(source, tmp_path / "ecg.dcm"))
    assert np.abs(decoded.signal - source.signal).max() <= 0.0005 + 1e-6
    assert np.abs(decoded.median_beats - source.median_beats).max() <= 0.0005 + 1e-6
    assert decoded.median_sampling_rate == source.median_sampling_rate
    for field in (
        "patient_id",
        "patient_name",
        "patient_birth_date",
        "patient_sex",
        "patient_age",
        "acquisition_time",
        "device_model",
        "filters",
    ):
        assert getattr(decoded.metadata, field) == getattr(source.metadata, field), field


def test_missing_samples_survive_as_padding(shared_data, tmp_path):
    source = load(shared_data / PTBXL_500)
    signal = source.signal.copy()
    signal[2, 100:150] = np.nan
    ecg = Ecg(signal, source.sampling_rate, source.lead_names, source.metadata)
    path = _written(ecg, tmp_path / "ecg.dcm")
    assert "WaveformPaddingValue" in pydicom.dcmread(path).WaveformSequence[0]
    decoded = load(path)
    np.testing.assert_array_equal(np.isnan(decoded.signal), np.isnan(signal))


@needs_dcmtk
def test_dcmtk_reads_the_written_object(shared_data, tmp_path):
    path = _written(load(shared_data / "vendor/muse/muse-sinus.xml"), tmp_path / "ecg.dcm")
    dump = subprocess.run(["dcmdump", "-E", str(path)], check=False, capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    assert "E:" not in dump.stderr and "W:" not in dump.stderr, dump.stderr
    assert "=TwelveLeadECGWaveformStorage" in dump.stdout
    assert "[Lead I (Einthoven)]" in dump.stdout and "[5.6.3-9-1]" in dump.stdout
    assert "(5400,1010) OW" in dump.stdout  # WaveformData


def test_eight_lead_object_gets_the_limb_leads_derived(shared_data, tmp_path):
    ds = ecg_to_dicom(load(shared_data / PTBXL_500), include_median=False)
    eight = [STANDARD_LEADS.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    _keep_channels(ds, eight)
    ds.save_as(tmp_path / "eight.dcm", enforce_file_format=True)
    ecg = load(tmp_path / "eight.dcm")
    assert ecg.lead_names == STANDARD_LEADS
    one, two = ecg.lead("I").astype(np.float64), ecg.lead("II").astype(np.float64)
    np.testing.assert_allclose(ecg.lead("III"), two - one, atol=1e-6)
    np.testing.assert_allclose(ecg.lead("aVR"), -(one + two) / 2, atol=1e-6)
    np.testing.assert_allclose(ecg.lead("aVL"), one - two / 2, atol=1e-6)
    np.testing.assert_allclose(ecg.lead("aVF"), two - one / 2, atol=1e-6)


def test_millivolt_and_microvolt_sensitivity_units_agree(shared_data, tmp_path):
    ds = ecg_to_dicom(load(shared_data / PTBXL_500))
    in_uv = tmp_path / "uv.dcm"
    ds.save_as(in_uv, enforce_file_format=True)
    for group in ds.WaveformSequence:
        for channel in group.ChannelDefinitionSequence:
            channel.ChannelSensitivity = f"{float(channel.ChannelSensitivity) / 1000:g}"
            channel.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
            channel.ChannelSensitivityUnitsSequence[0].CodeMeaning = "millivolt"
    in_mv = tmp_path / "mv.dcm"
    ds.save_as(in_mv, enforce_file_format=True)
    np.testing.assert_allclose(load(in_mv).signal, load(in_uv).signal, atol=1e-7)


def test_correction_factor_and_baseline_follow_ps3_3(shared_data, tmp_path):
    """value = sample x sensitivity x correction + baseline, baseline in sensitivity units."""
    ds = ecg_to_dicom(load(shared_data / PTBXL_500), include_median=False)
    codes = _raw_codes(ds.WaveformSequence[0])
    channel = ds.WaveformSequence[0].ChannelDefinitionSequence[0]  # lead I, 1 uV per bit
    channel.ChannelSensitivityCorrectionFactor = "2"
    channel.ChannelBaseline = "150"  # uV
    ds.save_as(tmp_path / "scaled.dcm", enforce_file_format=True)
    lead_one = load(tmp_path / "scaled.dcm").lead("I")
    np.testing.assert_allclose(lead_one, (codes[:, 0] * 1.0 * 2 + 150) / 1000, atol=1e-6)


def test_hemodynamic_object_keeps_its_ecg_leads_and_leaves_out_pressure(shared_data, tmp_path):
    ds = ecg_to_dicom(load(shared_data / PTBXL_500), include_median=False)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = HEMODYNAMIC_STORAGE
    _keep_channels(ds, [STANDARD_LEADS.index("II"), STANDARD_LEADS.index("V1")])
    pressure = ds.WaveformSequence[0].ChannelDefinitionSequence[1]
    pressure.ChannelLabel = "Aortic pressure"
    pressure.ChannelSourceSequence[0].CodeValue = "15825003"
    pressure.ChannelSourceSequence[0].CodingSchemeDesignator = "SCT"
    pressure.ChannelSourceSequence[0].CodeMeaning = "Aorta"
    pressure.ChannelSensitivityUnitsSequence[0].CodeValue = "mm[Hg]"
    pressure.ChannelSensitivityUnitsSequence[0].CodeMeaning = "mmHg"
    ds.save_as(tmp_path / "hemo.dcm", enforce_file_format=True)
    ecg = load(tmp_path / "hemo.dcm")
    assert ecg.lead_names == ("II",)
    np.testing.assert_allclose(ecg.lead("II"), load(shared_data / PTBXL_500).lead("II"), atol=1e-6)


@pytest.mark.parametrize(
    "source, label",
    [
        (("5.6.3-9-62", "SCPECG", "Lead aVR"), None),
        (("2:62", "MDC", "whatever"), None),
        (("131134", "MDC", "whatever"), None),  # MDC context-free: 2 << 16 | 62
        (("MDC_ECG_LEAD_AVR", "MDC", "whatever"), None),
        (("L-62", "99LOCAL", "aVR, augmented voltage, right"), None),  # meaning only
        (("L-62", "99LOCAL", "unknown"), "avr"),  # ChannelLabel only
    ],
)
def test_lead_identified_from_any_coding(shared_data, tmp_path, source, label):
    """Channel 4 (aVR) recoded each way carts write it; moved first, so order is checked too."""
    reference = load(shared_data / PTBXL_500)
    ds = ecg_to_dicom(reference, include_median=False)
    avr = STANDARD_LEADS.index("aVR")
    _keep_channels(ds, [avr] + [i for i in range(12) if i != avr])
    channel = ds.WaveformSequence[0].ChannelDefinitionSequence[0]
    item = channel.ChannelSourceSequence[0]
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = source
    del item.CodingSchemeVersion
    if label:
        channel.ChannelLabel = label
    else:
        del channel.ChannelLabel
    ds.save_as(tmp_path / "recoded.dcm", enforce_file_format=True)
    ecg = load(tmp_path / "recoded.dcm")
    assert ecg.lead_names == STANDARD_LEADS
    np.testing.assert_allclose(ecg.signal, reference.signal, atol=1e-6)


def test_samples_equal_pydicoms_own_waveform_reader(shared_data):
    """pydicom's waveform_array (sensitivity, correction and baseline applied, in uV) as
    the second implementation: every recorded lead of the rhythm group is the same."""
    path = shared_data / "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm"
    ds = pydicom.dcmread(path)
    reference = ds.waveform_array(0) / 1000.0
    ecg = load(path)
    channels = ds.WaveformSequence[0].ChannelDefinitionSequence
    for index, channel in enumerate(channels):
        name = lead_from_text(channel.ChannelSourceSequence[0].CodeMeaning)
        np.testing.assert_allclose(ecg.lead(name), reference[:, index], atol=1e-6)
