"""Bad input: one EcgDecodeError that names the file and the problem, never patient data.

Each bad file is made here from a good one (or is a real file of a format we do not
read), so every case differs from a decodable ECG in exactly the way its name says.
"""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from model import load
from model.decode import read_muse_measurements
from model.dicom_write import ecg_to_dicom
from model.errors import EcgDecodeError

PTBXL_500 = "ptbxl/records500/00000/00001_hr"
MUSE_SINUS = "vendor/muse/muse-sinus.xml"
PATIENT_NAME = "Secretname^Alice"
PATIENT_ID = "PID-77310"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
HEMODYNAMIC_STORAGE = "1.2.840.10008.5.1.4.1.1.9.2.1"


def _fails(path: Path, *fragments: str) -> EcgDecodeError:
    """load() raises EcgDecodeError naming the file, with each fragment in the reason."""
    with pytest.raises(EcgDecodeError) as caught:
        load(path)
    error = caught.value
    assert error.source == str(path)
    assert str(path) in str(error)
    for fragment in fragments:
        assert fragment in error.reason, error.reason
    return error


@pytest.fixture(scope="module")
def good_dataset(shared_data) -> Dataset:
    """A decodable 12-lead ECG object carrying (made-up) identifying data."""
    ds = ecg_to_dicom(load(shared_data / PTBXL_500))
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    return ds


def _damaged(good: Dataset, tmp_path: Path, damage) -> Path:
    ds = copy.deepcopy(good)
    damage(ds)
    path = tmp_path / "damaged.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _assert_no_patient_data(error: EcgDecodeError) -> None:
    for secret in (PATIENT_ID, "Secretname", "Alice"):
        assert secret not in str(error)


def test_the_good_dataset_itself_decodes(good_dataset, tmp_path):
    assert load(_damaged(good_dataset, tmp_path, lambda ds: None)).signal.shape == (12, 5000)


def test_random_bytes_are_not_dicom(tmp_path):
    path = tmp_path / "random.dcm"
    path.write_bytes(np.random.default_rng(7).bytes(4096))
    _fails(path, "unrecognised format", "not DICOM")


def test_dicom_marker_followed_by_garbage(tmp_path):
    path = tmp_path / "garbage.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + np.random.default_rng(8).bytes(4096))
    _fails(path)


def test_file_cut_in_half(good_dataset, tmp_path):
    whole = _damaged(good_dataset, tmp_path, lambda ds: None)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _assert_no_patient_data(_fails(cut, "WaveformData has", "truncated"))


def test_truncated_waveform_data(good_dataset, tmp_path):
    def truncate(ds):
        ds.WaveformSequence[0].WaveformData = ds.WaveformSequence[0].WaveformData[:-100]

    error = _fails(
        _damaged(good_dataset, tmp_path, truncate),
        "WaveformData has 119900 bytes",
        "12 channels x 5000 samples x 2 bytes = 120000",
        "truncated",
    )
    _assert_no_patient_data(error)


def test_channel_definitions_removed(good_dataset, tmp_path):
    def remove(ds):
        del ds.WaveformSequence[0].ChannelDefinitionSequence

    _fails(
        _damaged(good_dataset, tmp_path, remove),
        "multiplex group 1",
        "no ChannelDefinitionSequence",
    )


def test_channel_count_disagrees_with_definitions(good_dataset, tmp_path):
    def miscount(ds):
        ds.WaveformSequence[0].NumberOfWaveformChannels = 13

    _fails(
        _damaged(good_dataset, tmp_path, miscount),
        "defines 12 channels",
        "NumberOfWaveformChannels is 13",
    )


@pytest.mark.parametrize("rate, shown", [("0", "0 Hz"), ("1e9", "1e+09 Hz")])
def test_absurd_sampling_frequency(good_dataset, tmp_path, rate, shown):
    def set_rate(ds):
        ds.WaveformSequence[0].SamplingFrequency = rate

    _fails(
        _damaged(good_dataset, tmp_path, set_rate),
        f"sampling frequency {shown}",
        "outside the plausible 50-20000 Hz",
    )


def test_hemodynamic_object_with_only_pressure_channels(good_dataset, tmp_path):
    def pressure_only(ds):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = HEMODYNAMIC_STORAGE
        for group in ds.WaveformSequence:
            for channel in group.ChannelDefinitionSequence:
                del channel.ChannelLabel
                source = channel.ChannelSourceSequence[0]
                source.CodeValue, source.CodingSchemeDesignator = "15825003", "SCT"
                source.CodeMeaning = "Aorta"
                channel.ChannelSensitivityUnitsSequence[0].CodeValue = "mm[Hg]"

    _fails(_damaged(good_dataset, tmp_path, pressure_only), "no ECG leads")


def test_ct_image_is_not_an_ecg(good_dataset, tmp_path):
    def make_ct(ds):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        ds.Modality = "CT"

    _fails(
        _damaged(good_dataset, tmp_path, make_ct),
        f"unsupported SOP class {CT_IMAGE_STORAGE} (CT Image Storage)",
    )


def test_ecg_object_without_waveform(good_dataset, tmp_path):
    def strip(ds):
        del ds.WaveformSequence

    _fails(_damaged(good_dataset, tmp_path, strip), "no WaveformSequence")


def test_audio_sample_encoding(good_dataset, tmp_path):
    def companded(ds):
        ds.WaveformSequence[0].WaveformSampleInterpretation = "MB"
        ds.WaveformSequence[0].WaveformBitsAllocated = 8

    _fails(_damaged(good_dataset, tmp_path, companded), "MB", "not an ECG")


def test_lead_without_sensitivity(good_dataset, tmp_path):
    def uncalibrated(ds):
        del ds.WaveformSequence[0].ChannelDefinitionSequence[1].ChannelSensitivity

    _fails(
        _damaged(good_dataset, tmp_path, uncalibrated), "channel 2 (II)", "no ChannelSensitivity"
    )


def test_lead_in_non_voltage_units(good_dataset, tmp_path):
    def wrong_units(ds):
        ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSensitivityUnitsSequence[
            0
        ].CodeValue = "mm[Hg]"

    _fails(_damaged(good_dataset, tmp_path, wrong_units), "(I)", "'mm[Hg]' are not a voltage")


def _wfdb_copy(shared_data: Path, tmp_path: Path, header_edit=None, dat_bytes=None) -> Path:
    source = shared_data / "ludb/data/1"
    header = source.with_suffix(".hea").read_text()
    (tmp_path / "1.hea").write_text(header_edit(header) if header_edit else header)
    data = source.with_suffix(".dat").read_bytes()
    if dat_bytes != 0:
        (tmp_path / "1.dat").write_bytes(data[:dat_bytes] if dat_bytes else data)
    return tmp_path / "1"


def test_wfdb_header_without_its_signal_file(shared_data, tmp_path):
    _fails(_wfdb_copy(shared_data, tmp_path, dat_bytes=0), "cannot read WFDB record")


def test_wfdb_signal_file_truncated(shared_data, tmp_path):
    _fails(_wfdb_copy(shared_data, tmp_path, dat_bytes=48000), "cannot read WFDB record")


def test_wfdb_zero_sampling_frequency(shared_data, tmp_path):
    record = _wfdb_copy(shared_data, tmp_path, lambda h: h.replace("1 12 500 5000", "1 12 0 5000"))
    _fails(record, "sampling frequency 0 Hz")


def test_wfdb_record_with_no_voltage_signal(shared_data, tmp_path):
    record = _wfdb_copy(shared_data, tmp_path, lambda h: h.replace("/mV", "/mmHg"))
    _fails(record, "no ECG leads")


def _muse_copy(shared_data: Path, tmp_path: Path, edit) -> Path:
    path = tmp_path / "muse.xml"
    path.write_bytes(edit((shared_data / MUSE_SINUS).read_bytes()))
    return path


def _first_waveform_data_at(xml: bytes) -> int:
    return xml.index(b"<WaveFormData>") + len(b"<WaveFormData>") + 40


def test_muse_lead_corrupted(shared_data, tmp_path):
    def flip(xml: bytes) -> bytes:
        at = _first_waveform_data_at(xml)
        return xml[:at] + (b"B" if xml[at : at + 1] != b"B" else b"C") + xml[at + 1 :]

    error = _fails(_muse_copy(shared_data, tmp_path, flip), "Median waveform lead I", "CRC32")
    for secret in ("081486213", "DOE", "JOHN", "1979"):
        assert secret not in str(error)


def test_muse_lead_truncated(shared_data, tmp_path):
    def cut(xml: bytes) -> bytes:
        """The first lead's samples replaced by their first half, validly encoded."""
        match = re.search(rb"<WaveFormData>(.*?)</WaveFormData>", xml, re.DOTALL)
        samples = base64.b64decode(b"".join(match[1].split()))
        half = base64.b64encode(samples[: len(samples) // 2])
        return xml[: match.start(1)] + half + xml[match.end(1) :]

    _fails(_muse_copy(shared_data, tmp_path, cut), "Median waveform lead I", "truncated")


def test_muse_file_cut_short(shared_data, tmp_path):
    _fails(_muse_copy(shared_data, tmp_path, lambda xml: xml[: len(xml) // 2]), "malformed XML")


def test_xml_entity_expansion_is_refused(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        "<RestingECG><PatientDemographics><PatientID>&c;</PatientID></PatientDemographics>"
        "</RestingECG>"
    )
    _fails(path, "refused for safety")


def test_xml_external_entity_is_refused(tmp_path):
    path = tmp_path / "xxe.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE RestingECG [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<RestingECG><PatientDemographics><PatientID>&x;</PatientID></PatientDemographics>"
        "</RestingECG>"
    )
    _fails(path, "refused for safety")


def test_xml_of_no_ecg_format_is_named_unsupported(tmp_path):
    path = tmp_path / "cda.xml"
    path.write_text('<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>')
    error = _fails(path, "unsupported XML document", "ClinicalDocument")
    for supported in ("GE MUSE XML", "Philips Sierra XML", "HL7 aECG"):
        assert supported in error.reason


def test_measurements_from_a_non_muse_file(shared_data):
    with pytest.raises(EcgDecodeError, match="not GE MUSE XML"):
        read_muse_measurements(shared_data / "vendor/aecg/fda_example_aecg.xml")


def test_missing_path_and_directory(tmp_path):
    _fails(tmp_path / "nothing-here", "no such file")
    _fails(tmp_path, "is a directory")
