"""GE MUSE RestingECG XML: calibrated leads, derived limb leads, medians, GE's measurements."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import datetime

import numpy as np

from model import STANDARD_LEADS, load
from model.decode import read_muse_measurements

MUSE_SINUS = "vendor/muse/muse-sinus.xml"
GUANGXI_XML = "vendor/muse/guangxi_teaching_sinus_rhythm.xml"
GUANGXI_DCM = "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm"
MUSE_STEP_MV = 4.88e-3  # LeadAmplitudeUnitsPerBit 4.88 MICROVOLTS in both files


def _raw_lead(path, waveform_type: str, lead_id: str) -> np.ndarray:
    """One lead's int16 samples read straight from the XML, independently of the decoder."""
    for waveform in ET.parse(path).getroot().iter("Waveform"):
        if waveform.findtext("WaveformType") == waveform_type:
            for lead in waveform.iter("LeadData"):
                if lead.findtext("LeadID") == lead_id:
                    data = base64.b64decode(lead.findtext("WaveFormData"))
                    return np.frombuffer(data, dtype="<i2").astype(np.float64)
    raise AssertionError(f"{lead_id} not in {waveform_type}")


def test_rhythm_and_median_waveforms(shared_data):
    path = shared_data / MUSE_SINUS
    ecg = load(path)
    assert ecg.lead_names == STANDARD_LEADS
    assert (ecg.sampling_rate, ecg.signal.shape) == (500, (12, 5000))
    assert ecg.median_beats.shape == (12, 600)
    assert ecg.median_sampling_rate == 500
    for lead in ("I", "II", "V1", "V6"):
        np.testing.assert_allclose(
            ecg.lead(lead), _raw_lead(path, "Rhythm", lead) * MUSE_STEP_MV, atol=1e-6
        )
    median_v3 = ecg.median_beats[STANDARD_LEADS.index("V3")]
    np.testing.assert_allclose(median_v3, _raw_lead(path, "Median", "V3") * MUSE_STEP_MV, atol=1e-6)
    # R waves of a resting ECG: lead II peaks between 0.3 and 5 mV
    assert 0.3 < ecg.lead("II").max() < 5.0


def test_the_four_missing_limb_leads_are_derived_from_i_and_ii(shared_data):
    ecg = load(shared_data / MUSE_SINUS)
    one, two = ecg.lead("I").astype(np.float64), ecg.lead("II").astype(np.float64)
    np.testing.assert_allclose(ecg.lead("III"), two - one, atol=1e-6)
    np.testing.assert_allclose(ecg.lead("aVR"), -(one + two) / 2, atol=1e-6)
    np.testing.assert_allclose(ecg.lead("aVL"), one - two / 2, atol=1e-6)
    np.testing.assert_allclose(ecg.lead("aVF"), two - one / 2, atol=1e-6)
    median = dict(zip(ecg.lead_names, ecg.median_beats.astype(np.float64), strict=True))
    np.testing.assert_allclose(median["III"], median["II"] - median["I"], atol=1e-6)


def test_metadata_from_demographics(shared_data):
    meta = load(shared_data / MUSE_SINUS).metadata
    assert meta.source_format == "muse-xml"
    assert (meta.patient_id, meta.patient_name) == ("081486213", "DOE^JOHN")
    assert meta.patient_birth_date == "19790708"
    assert (meta.patient_sex, meta.patient_age) == ("M", "043Y")
    assert meta.acquisition_time == datetime(2023, 4, 29, 22, 41, 16)
    assert (meta.device_model, meta.institution_name) == ("MV360", "UNIVERSITY OF HOSPITAL")
    assert meta.filters == "0.56-150 Hz, notch 60 Hz"


def test_xml_and_its_dicom_twin_are_the_same_ecg_within_one_step(shared_data):
    """ecg2dcm converted the Guangxi XML to the vendor DICOM (ATTRIBUTION.md): the stored
    leads match exactly, the derived ones (rounded by ecg2dcm) within one 4.88 uV step."""
    xml = load(shared_data / GUANGXI_XML)
    dcm = load(shared_data / GUANGXI_DCM)
    assert xml.lead_names == dcm.lead_names == STANDARD_LEADS
    assert xml.sampling_rate == dcm.sampling_rate == 500
    assert np.abs(xml.signal - dcm.signal).max() <= MUSE_STEP_MV
    assert np.abs(xml.median_beats - dcm.median_beats).max() <= MUSE_STEP_MV
    recorded = [STANDARD_LEADS.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    np.testing.assert_allclose(xml.signal[recorded], dcm.signal[recorded], atol=1e-6)


def test_wfdb_export_of_the_same_ecg_has_its_gain_five_times_off(shared_data):
    """wfdb-samples/muse-sinus is a third-party WFDB export of muse-sinus.xml (same start
    time). Its samples are the microvolt values but its header declares 200 adu/mV,
    so it reads five times too large. The decoders follow each file's own calibration;
    this pins the data defect so that nobody 'fixes' a decoder to match it."""
    xml = load(shared_data / MUSE_SINUS)
    wfdb = load(shared_data / "wfdb-samples/muse-sinus")
    assert wfdb.metadata.acquisition_time == xml.metadata.acquisition_time
    for index in range(12):
        a, b = xml.signal[index].astype(np.float64), wfdb.signal[index].astype(np.float64)
        assert np.corrcoef(a, b)[0, 1] > 0.9999
        assert abs(np.dot(a, b) / np.dot(a, a) - 5.0) < 0.01


def test_ge_measurements(shared_data):
    measured = read_muse_measurements(shared_data / GUANGXI_XML)
    expected = {
        "VentricularRate": 97,
        "AtrialRate": 97,
        "PRInterval": 122,
        "QRSDuration": 74,
        "QTInterval": 328,
        "QTCorrected": 417,
        "PAxis": 31,
        "RAxis": 63,
        "TAxis": 49,
        "QTcFrederica": 384,
        "QRSCount": 16,
    }
    assert {key: measured[key] for key in expected} == expected
    assert all(isinstance(value, float) for value in measured.values())
    other = read_muse_measurements(shared_data / MUSE_SINUS)
    assert (other["VentricularRate"], other["QTCorrected"], other["RAxis"]) == (90, 491, 0)


def test_ges_measurements_and_statements_are_kept(shared_data):
    meta = load(shared_data / MUSE_SINUS).metadata
    ge = read_muse_measurements(shared_data / MUSE_SINUS)
    kept = dict(meta.device_measurements)
    assert kept["qrs_ms"] == ge["QRSDuration"] == 86
    assert (kept["heart_rate_bpm"], kept["qrs_axis_deg"]) == (ge["VentricularRate"], ge["RAxis"])
    assert meta.device_statements[:4] == (
        "Normal Sinus rhythm",
        "Anterior infarct, age undetermined",
        "T wave abnormality, consider lateral ischemia",
        "Abnormal ECG",
    )


def test_the_dicom_twin_carries_the_same_measurements_as_annotations(shared_data):
    """ecg2dcm wrote GE's measurements into the Waveform Annotation module; the DICOM
    decoder reads them back as the same device measurements the XML gives."""
    xml = dict(load(shared_data / GUANGXI_XML).metadata.device_measurements)
    dcm = dict(load(shared_data / GUANGXI_DCM).metadata.device_measurements)
    assert dcm == {key: xml[key] for key in dcm}
    assert set(dcm) >= {"heart_rate_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "qrs_axis_deg"}
