"""SCP-ECG: the non-compliant Healforce recordings in ../shared/data, and standard records
written by tests/scp_support.py from a real PTB-XL ECG (Huffman default and file tables,
first and second differences, reference-beat subtraction, sections 1, 7, 8, 9, 10), each read
back exactly; then a corpus of damaged and hostile records, each failing with a named error."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks

import model
from model import EcgDecodeError
from tests import scp_support as scp
from tests.device_measurements import measurements_text

HEALFORCE = ["vendor/scp/demodata/ECG_0/62.SCP", "vendor/scp/demodata/ECG_0/63.SCP"]
PTBXL = "ptbxl/records500/00000/00001_hr"
LEADS = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
STEP_MV = 0.005  # AVM 5000 nV


@pytest.mark.parametrize("relative", HEALFORCE)
def test_healforce_recordings(shared_data, relative):
    """30 s of leads I, II, III at 150 Hz; limb leads derived; quirks named as warnings."""
    ecg = model.load(shared_data / relative)
    assert ecg.lead_names == ("I", "II", "III", "aVR", "aVL", "aVF")
    assert (ecg.sampling_rate, ecg.n_samples) == (150, 4500)
    assert ecg.metadata.acquisition_time.isoformat() == "2019-08-08T00:04:10"
    assert ecg.metadata.patient_id == "00000"
    warnings = " ".join(ecg.metadata.warnings)
    for quirk in ("0-based", "Healforce packed samples", "big-endian", "CRC-16 variant"):
        assert quirk in warnings
    assert ecg.metadata.warnings[1] == (
        "SCP-ECG section 9 (manufacturer-specific, 1776 bytes) was not decoded"
    )
    one, two, three = (ecg.lead(n).astype(float) for n in ("I", "II", "III"))
    assert np.std(three - (two - one)) < 0.03  # recorded III obeys Einthoven within 3 steps
    peaks, _ = find_peaks(ecg.lead("II"), height=0.6, distance=60)
    assert 25 <= len(peaks) <= 40  # about one beat per second for 30 s
    assert 0.5 < ecg.lead("II").max() < 3.0


def test_healforce_decoding_matches_the_published_unpacking(shared_data):
    """The first samples unpacked by hand as the Healforce reference script does
    (three words, a fourth sample from their top nibbles, 10-bit offset binary)."""
    data = (shared_data / HEALFORCE[0]).read_bytes()
    words = np.frombuffer(data[488 + 16 + 8 : 488 + 16 + 8 + 12], dtype="<u2").astype(int)
    fourth = ((words[0] & 0x3C00) >> 2) + ((words[1] & 0x3C00) >> 6) + ((words[2] & 0x3C00) >> 10)
    values = [(int(w) & 0x3FF) - 512 for w in (*words[:3], fourth, *words[3:])]
    ecg = model.load(shared_data / HEALFORCE[0])
    avm_mv = struct.unpack_from("<H", data, 488 + 16)[0] / 1e6
    interleaved = ecg.signal[:3, :2].T.reshape(-1)
    np.testing.assert_allclose(interleaved, np.array(values[:6]) * avm_mv, atol=1e-7)


@pytest.fixture(scope="module")
def ptbxl_codes(shared_data) -> np.ndarray:
    ecg = model.load(shared_data / PTBXL)
    return np.stack([np.rint(ecg.lead(n) / STEP_MV) for n in LEADS]).astype(np.int64)


def _record(codes: np.ndarray, **changes) -> scp.Record:
    return scp.Record(samples=codes, lead_ids=[scp.SCP_LEAD_IDS[n] for n in LEADS], **changes)


def _write(tmp_path: Path, record: scp.Record, name: str = "ecg.scp") -> Path:
    path = tmp_path / name
    path.write_bytes(scp.build(record))
    return path


@pytest.mark.parametrize(
    "huffman, difference",
    [("default", 2), ("default", 1), ("file", 0), ("switching", 0), ("none", 0)],
)
def test_standard_record_reads_back_exactly(ptbxl_codes, tmp_path, huffman, difference):
    record = _record(ptbxl_codes, huffman=huffman, difference=difference)
    ecg = model.load(_write(tmp_path, record))
    assert ecg.sampling_rate == 500
    assert ecg.metadata.warnings == ()
    for index, name in enumerate(LEADS):
        np.testing.assert_allclose(ecg.lead(name), ptbxl_codes[index] * STEP_MV, atol=1e-6)
    assert ecg.lead_names[:6] == ("I", "II", "III", "aVR", "aVL", "aVF")


def _reference_beat(codes: np.ndarray) -> tuple[np.ndarray, int, list]:
    """A median beat 600 ms long with its R at sample 101, and zones around every R."""
    peaks, _ = find_peaks(codes[1], distance=200, height=np.percentile(codes[1], 99) * 0.6)
    peaks = [p for p in peaks if 100 <= p < codes.shape[1] - 200]
    beat = np.median(np.stack([codes[:, p - 100 : p + 200] for p in peaks]), axis=0)
    zones = [(p + 1 - 40, p + 1, p + 1 + 150) for p in peaks]
    return np.rint(beat).astype(np.int64), 101, zones


def test_reference_beat_subtraction_is_undone(ptbxl_codes, tmp_path):
    beat, fiducial, zones = _reference_beat(ptbxl_codes)
    assert len(zones) >= 8
    record = _record(ptbxl_codes, reference=beat, fiducial=fiducial, qrs=zones)
    ecg = model.load(_write(tmp_path, record))
    for index, name in enumerate(LEADS):
        np.testing.assert_allclose(ecg.lead(name), ptbxl_codes[index] * STEP_MV, atol=1e-6)
    assert ecg.median_beats.shape == (12, 300)
    np.testing.assert_allclose(ecg.median_beats[1], beat[1] * STEP_MV, atol=1e-6)
    # the rhythm stream really is residual: with the flag cleared nothing is added back
    # and the QRS complexes are gone
    unflagged = _record(
        ptbxl_codes, reference=beat, fiducial=fiducial, qrs=zones, overrides={"flags": 0x44}
    )
    residual = model.load(_write(tmp_path, unflagged, "residual.scp")).lead("II")
    start, _, end = zones[3]
    assert np.ptp(residual[start:end]) < 0.5 * np.ptp(ptbxl_codes[1, start:end] * STEP_MV)


def test_patient_acquisition_measurements_and_statements(ptbxl_codes, tmp_path):
    record = _record(
        ptbxl_codes,
        tags=scp.acquisition_tags(),
        section7=scp.global_measurements(),
        statements=["Sinus rhythm", "Normal ECG"],
    )
    meta = model.load(_write(tmp_path, record)).metadata
    assert (meta.patient_id, meta.patient_name, meta.patient_sex) == ("PID-4711", "Doe^Jane", "F")
    assert (meta.patient_birth_date, meta.patient_age) == ("19610314", "063Y")
    assert meta.acquisition_time.isoformat() == "2024-05-17T10:30:05"
    assert meta.filters == "0.05-150 Hz, notch 50 Hz"
    assert (meta.device_manufacturer, meta.device_model, meta.device_serial) == (
        "Acme Medical",
        "Cardi",  # the model field holds 5 characters and a NUL
        "SN-0042",
    )
    assert measurements_text(meta) == (
        "heart_rate_bpm=70 p_axis_deg=45 p_duration_ms=104 pr_ms=160 "
        "qrs_axis_deg=30 qrs_ms=94 qt_ms=400 rr_ms=857 t_axis_deg=40"
    )
    assert meta.device_statements == ("Sinus rhythm", "Normal ECG")


def test_scp_converts_to_dicom_and_back(ptbxl_codes, tmp_path):
    from model.dicom_write import ecg_to_dicom

    source = model.load(_write(tmp_path, _record(ptbxl_codes, tags=scp.acquisition_tags())))
    out = tmp_path / "out.dcm"
    ecg_to_dicom(source).save_as(out, enforce_file_format=True)
    again = model.load(out)
    assert again.metadata.patient_id == "PID-4711"
    assert np.abs(again.signal - source.signal).max() <= 0.0005 + 1e-6


# --- bad input ---------------------------------------------------------------------------

_NOT_PREFIX_FREE = struct.pack("<HH", 1, 2) + struct.pack("<BBBhI", 1, 9, 1, 0, 0) * 2
_ONE_CODE_TABLE = struct.pack("<HH", 1, 1) + struct.pack("<BBBhI", 1, 9, 1, 0, 0)  # only '0'

BAD = {
    "no lead": ({"lead_count": 0}, "section 3: 0 leads declared"),
    "absurd lead count": ({"lead_count": 200}, "section 3: 200 leads declared"),
    "huge declared sample count": (
        {"end_sample": 0xFFFFFFFF},
        "section 3: samples 1-4294967295: 4294967295 is not 1-500000",
    ),
    "more samples declared than coded": (  # 5000 coded, then what the padding bits spell
        {"end_sample": 6000},
        "section 6 lead 1: stream ends after 5003 of 6000 samples",
    ),
    "zero amplitude multiplier": ({"avm": 0}, "section 6 amplitude multiplier: 0 nV"),
    "zero sample interval": ({"interval": 0}, "section 6 sample interval: 0 us"),
    "absurd sampling rate": ({"interval": 1}, "sampling frequency 1e+06 Hz"),
    "byte counts beyond the section": (
        {"counts": [60000] * 8},
        "section 6: lead byte counts add up to 480000",
    ),
    "bimodal compression": ({"bimodal": 1}, "bimodal compression is not supported"),
    "Huffman table not prefix-free": (
        {"section2": _NOT_PREFIX_FREE},
        "section 2: Huffman table 1 code 2 overlaps code 1",
    ),
    "Huffman stream that does not decode": (
        {"section2": _ONE_CODE_TABLE},
        "section 6 lead 1: bits at offset 0 match no code of the Huffman table",
    ),
    "absurd Huffman table count": (
        {"section2": struct.pack("<H", 5000)},
        "section 2: 5000 Huffman tables declared",
    ),
    "Huffman table cut short": (
        {"section2": struct.pack("<HH", 1, 200)},
        "section 2: table 1 declares 200 codes",
    ),
}


@pytest.mark.timeout(10)  # a hostile file fails fast: no decoding loop can hang
@pytest.mark.parametrize("case", list(BAD))
def test_bad_record_names_format_field_and_problem(ptbxl_codes, tmp_path, case):
    overrides, fragment = BAD[case]
    codes = ptbxl_codes[:, :5000]
    path = _write(tmp_path, _record(codes, huffman="default", overrides=overrides))
    with pytest.raises(EcgDecodeError) as caught:
        model.load(path)
    assert caught.value.source == str(path)
    assert fragment in caught.value.reason, caught.value.reason
    assert caught.value.reason.startswith("SCP-ECG ") or "Hz" in fragment


def test_corrupted_byte_fails_the_crc(ptbxl_codes, tmp_path):
    data = bytearray(scp.build(_record(ptbxl_codes, tags=scp.acquisition_tags())))
    data[len(data) // 2] ^= 0x40
    path = tmp_path / "flipped.scp"
    path.write_bytes(bytes(data))
    with pytest.raises(EcgDecodeError, match=r"SCP-ECG section 6: fails its CRC check"):
        model.load(path)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1, 0.02])
def test_truncated_record(ptbxl_codes, tmp_path, keep):
    data = scp.build(_record(ptbxl_codes, tags=scp.acquisition_tags()))
    path = tmp_path / "cut.scp"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(EcgDecodeError, match=r"SCP-ECG section \d+:|unrecognised format") as e:
        model.load(path)
    assert "PID-4711" not in str(e.value) and "Doe" not in str(e.value)


@pytest.mark.timeout(10)  # a hostile file fails fast: no decoding loop can hang
@pytest.mark.parametrize("seed", range(20))
def test_random_damage_never_crashes(ptbxl_codes, tmp_path, seed):
    """Random bytes over a valid record: a decoded ECG or an EcgDecodeError, nothing else."""
    rng = np.random.default_rng(seed)
    data = bytearray(scp.build(_record(ptbxl_codes[:, :2000], tags=scp.acquisition_tags())))
    for position in rng.integers(6, len(data), size=8):
        data[position] = rng.integers(0, 256)
    path = tmp_path / "random.scp"
    path.write_bytes(bytes(data))
    try:
        model.load(path)
    except EcgDecodeError as exc:
        assert exc.reason


def test_undefined_measurements_are_left_out(ptbxl_codes, tmp_path):
    """29999 marks an interval not computed, 999 an axis not computed."""
    section7 = scp.global_measurements(p_on=29999, axes=(999, 30, 999))
    meta = model.load(_write(tmp_path, _record(ptbxl_codes, section7=section7))).metadata
    assert measurements_text(meta) == (
        "heart_rate_bpm=70 qrs_axis_deg=30 qrs_ms=94 qt_ms=400 rr_ms=857"
    )


def test_the_standards_worked_example(tmp_path):
    """prEN 1064:2002's Huffman example (default table, second differences): these 15
    bytes are 28 samples (the byte F1 and the trailing 00 as corrected by pixelmed)."""
    stream = bytes.fromhex("FF837FE0E6F1536559B65B964B9600")
    expected = [13, 14, 15, 14, 16, 18, 19, 20, 22, 22, 23, 23, 23, 22, 22, 20, 17, 15]
    expected += [12, 8, 6, 3, 1, 0, -2, -2, -3, -3]
    record = scp.Record(
        samples=np.zeros((1, 28), dtype=np.int64),
        lead_ids=[scp.SCP_LEAD_IDS["V1"]],
        avm_nv=1000,
        overrides={"streams": [stream]},
    )
    ecg = model.load(_write(tmp_path, record))
    np.testing.assert_allclose(ecg.lead("V1"), np.array(expected) * 0.001, atol=1e-9)


# Lead II: every value of EN 1064's list, with 'not computed' (29999), 'rejected' (29998)
# and the morphology and quality codes (positions 21, 22, 26), then two manufacturer
# values past the standard's list. V2: only its first four values (a shorter block).
LEAD_II = [96, 160, 94, 400, 20, 40, 30, 29999, 29999, -150, 1250, -420, 29998, 29999]
LEAD_II += [15, 110, -30, 310, 0, 1500, 1, 2, 12, 8, 36, 0, 40, 60, 80, 50, 70, 7, 9]
SECTION10 = scp.lead_measurement_block([(2, LEAD_II), (4, [88, 150, 29999, 380])])


def test_lead_measurements_and_manufacturer_section(ptbxl_codes, tmp_path):
    """Section 10 kept per lead as the device's measurements, next to section 7's global
    ones; section 9 named by size only (its bytes could be patient data)."""
    record = _record(
        ptbxl_codes,
        section7=scp.global_measurements(),
        section9=b"Doe^Jane ACME-PRIVATE" + bytes(11),
        section10=SECTION10,
    )
    meta = model.load(_write(tmp_path, record)).metadata
    assert measurements_text(meta) == (
        "heart_rate_bpm=70 "
        "lead_II_intrinsicoid_deflection_ms=36 lead_II_isoelectric_qrs_end_ms=8 "
        "lead_II_isoelectric_qrs_onset_ms=12 lead_II_j_amplitude_uv=15 "
        "lead_II_p_duration_ms=96 lead_II_p_minus_amplitude_uv=-30 "
        "lead_II_p_plus_amplitude_uv=110 lead_II_pr_ms=160 lead_II_q_amplitude_uv=-150 "
        "lead_II_q_duration_ms=20 lead_II_qrs_ms=94 lead_II_qt_ms=400 "
        "lead_II_r_amplitude_uv=1250 lead_II_r_duration_ms=40 lead_II_s_amplitude_uv=-420 "
        "lead_II_s_duration_ms=30 lead_II_st_j20_amplitude_uv=40 "
        "lead_II_st_j60_amplitude_uv=60 lead_II_st_j80_amplitude_uv=80 "
        "lead_II_st_j_rr16_amplitude_uv=50 lead_II_st_j_rr8_amplitude_uv=70 "
        "lead_II_st_slope_uv_per_s=1500 lead_II_t_minus_amplitude_uv=0 "
        "lead_II_t_plus_amplitude_uv=310 "
        "lead_V2_p_duration_ms=88 lead_V2_pr_ms=150 lead_V2_qt_ms=380 "
        "p_axis_deg=45 p_duration_ms=104 pr_ms=160 qrs_axis_deg=30 qrs_ms=94 qt_ms=400 "
        "rr_ms=857 t_axis_deg=40"
    )
    assert meta.warnings == ("SCP-ECG section 9 (manufacturer-specific, 32 bytes) was not decoded",)
    assert "Doe" not in " ".join(meta.warnings)


def test_no_section_9_or_10_adds_nothing(ptbxl_codes, tmp_path):
    meta = model.load(_write(tmp_path, _record(ptbxl_codes))).metadata
    assert (meta.warnings, meta.device_measurements) == ((), ())


BAD_SECTION10 = {
    "no room for the lead count": (b"\x01", "section 10: 2 bytes: too short for the lead count"),
    "absurd lead count": (
        scp.lead_measurement_block([(2, LEAD_II)], count=40000),
        "section 10: 40000 leads declared; at most 15 expected",
    ),
    "16 leads": (
        scp.lead_measurement_block([(2, LEAD_II)], count=16),
        "section 10: 16 leads declared; at most 15 expected",
    ),
    "more leads declared than blocks": (
        scp.lead_measurement_block([(2, LEAD_II), (4, [88])], count=3),
        "section 10 lead block 3: starts at byte 80, the section has 80 bytes (3 leads",
    ),
    "block longer than the section": (
        scp.lead_measurement_block([(2, LEAD_II), (4, [88])], lengths=[66, 400]),
        "section 10 lead block 2: length 400 is odd or runs past the section's 80 bytes",
    ),
    "odd block length": (
        scp.lead_measurement_block([(2, LEAD_II)], lengths=[65]),
        "section 10 lead block 1: length 65 is odd",
    ),
    "lead measured twice": (
        scp.lead_measurement_block([(2, LEAD_II), (2, [88])]),
        "section 10 lead block 2: lead ID 2 appears twice",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SECTION10))
def test_bad_lead_measurements_name_format_field_and_problem(ptbxl_codes, tmp_path, case):
    section10, fragment = BAD_SECTION10[case]
    path = _write(tmp_path, _record(ptbxl_codes[:, :2000], section10=section10))
    with pytest.raises(EcgDecodeError) as caught:
        model.load(path)
    assert caught.value.reason.startswith(f"SCP-ECG {fragment}"), caught.value.reason


@pytest.mark.timeout(10)
@pytest.mark.parametrize("seed", range(20))
def test_random_lead_measurement_blocks_never_crash(ptbxl_codes, tmp_path, seed):
    """Random bytes as a section 10 with a valid CRC: measurements or an EcgDecodeError
    naming section 10, nothing else."""
    rng = np.random.default_rng(seed)
    body = rng.integers(0, 256, size=int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
    body = struct.pack("<H", int(rng.integers(0, 4))) + body  # a plausible lead count
    path = _write(tmp_path, _record(ptbxl_codes[:, :2000], section10=body))
    try:
        meta = model.load(path).metadata
    except EcgDecodeError as exc:
        assert exc.reason.startswith("SCP-ECG section 10"), exc.reason
    else:
        assert all(key.startswith("lead_") for key, _ in meta.device_measurements)
