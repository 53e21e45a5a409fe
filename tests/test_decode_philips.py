"""Philips Sierra XML 1.03 and 1.04: the XLI decoder against sierra-ecg-tools' own Python
reader, the cart's measurements against the gateway's engine, and a corpus of damaged and
hostile files made from the real ones."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
import sierraecg

import model
from model import STANDARD_LEADS, EcgDecodeError
from tests.device_measurements import assert_engine_agrees, measurements_text

V103 = "vendor/sierra/129DYPRG.XML"  # UTF-8, HeartStart MRx
V104 = "vendor/sierra/2020-5-18_15-48-11.xml"  # UTF-16, PageWriter TC, representative beats
FILES = [V103, V104]
MICROVOLTS_PER_BIT = 5.0  # both files: resolution 5


def _xml_text(path: Path) -> str:
    data = path.read_bytes()
    return data.decode("utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8")


def _write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "ecg.xml") -> Path:
    """The document in `encoding`, its declaration saying so (as the carts write it)."""
    text = re.sub(r'encoding="[^"]*"', f'encoding="{encoding}"', text, count=1)
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("relative", FILES)
def test_samples_equal_sierra_ecg_tools(shared_data, relative):
    """Every lead equals sierraecg's decode (limb leads rebuilt alike) up to the cut-off
    calibration pulse, scaled by the file's 5 uV per bit."""
    path = shared_data / relative
    ecg = model.load(path)
    reference = sierraecg.read_file(str(path))
    assert ecg.lead_names == STANDARD_LEADS
    assert ecg.sampling_rate == 500
    assert 5200 < ecg.n_samples < 5500  # 11 s stored; the calibration pulse is cut off
    for lead in reference.leads:
        expected = lead.samples[: ecg.n_samples].astype(np.float64) * MICROVOLTS_PER_BIT / 1000
        np.testing.assert_allclose(ecg.lead(lead.label), expected, atol=1e-6)
    pulse = reference.leads[0].samples[ecg.n_samples :]
    assert set(np.unique(pulse)) == {0, 200}  # only the 1 mV mark was cut


def test_representative_beats_become_median_beats(shared_data):
    path = shared_data / V104
    ecg = model.load(path)
    beats = sierraecg.read_file(str(path), include_repbeats=True).repbeats
    assert ecg.median_sampling_rate == 1000
    assert ecg.median_beats.shape == (12, 1200)
    for index, name in enumerate(ecg.lead_names):
        np.testing.assert_allclose(
            ecg.median_beats[index], beats[name].samples / 1000.0, atol=1e-6
        )  # resolution 1.0 uV
    assert model.load(shared_data / V103).median_beats is None  # 1.03 file has none


def test_the_carts_measurements_and_statements_are_kept(shared_data):
    meta = model.load(shared_data / V104).metadata
    assert meta.source_format == "philips-xml"
    assert measurements_text(meta) == (
        "heart_rate_bpm=64 p_axis_deg=27 p_duration_ms=104 pr_ms=164 "
        "qrs_axis_deg=22 qrs_ms=102 qt_ms=399 qtc_bazett_ms=412 "
        "qtc_fridericia_ms=408 qtc_ms=412 rr_ms=938 t_axis_deg=80"
    )
    assert meta.device_statements == (
        "Sinus rhythm (normal P axis, V-rate 50-99)",
        "Abnormal R-wave progression, early transition (QRS area>0 in V2)",
        "- OTHERWISE NORMAL ECG -",
    )
    assert (meta.device_manufacturer, meta.device_model) == ("Philips", "PageWriter TC")
    assert meta.patient_birth_date == "19510101"
    assert meta.acquisition_time.isoformat() == "2020-05-18T15:48:11"
    assert meta.filters == "0.05-150 Hz, notch 60 Hz"
    old = model.load(shared_data / V103).metadata
    assert old.device_statements[0] == "Sinus bradycardia (rate< 50)"
    assert old.device_statements[-1] == "- ABNORMAL ECG -"
    assert dict(old.device_measurements)["qrs_ms"] == 135
    assert old.patient_age == "050Y"


@pytest.mark.parametrize("relative", FILES)
def test_engine_agrees_with_the_cart_on_rate_pr_qt(shared_data, relative):
    """Same tolerances as against GE's measurements (tests/test_measure_real.py)."""
    tolerances = {"heart_rate_bpm": 2, "pr_ms": 30, "qt_ms": 25, "p_axis_deg": 10}
    assert_engine_agrees(model.load(shared_data / relative), {**tolerances, "t_axis_deg": 15})


def test_engine_agrees_with_the_pagewriter_on_qrs(shared_data):
    """Every lead turns at once at the nadir of its slow terminal S wave (-0.3 to -0.6 mV
    in II, III, aVF, V2-V6): the QRS ends after the S wave's return, not at its nadir
    (52 ms before, against the cart's 102)."""
    assert_engine_agrees(model.load(shared_data / V104), {"qrs_ms": 15})


@pytest.mark.xfail(
    strict=True,
    reason="engine disagreement, not a decoding error: our QRS is 98 ms where the MRx "
    "('Custom' measurement program) measures 135 ms (IVCD); its median beat is flat "
    "from 98 ms after the QRS onset",
)
def test_engine_agrees_with_the_mrx_on_qrs(shared_data):
    assert_engine_agrees(model.load(shared_data / V103), {"qrs_ms": 15})


@pytest.mark.parametrize("relative", FILES)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-be"])
def test_any_encoding_decodes_the_same(shared_data, tmp_path, relative, encoding):
    original = model.load(shared_data / relative)
    path = _write(tmp_path, _xml_text(shared_data / relative), encoding)
    if encoding == "utf-16-be":  # big-endian, declared 'utf-16' with its byte-order mark
        text = path.read_bytes().decode(encoding).replace('"utf-16-be"', '"utf-16"', 1)
        path.write_bytes(b"\xfe\xff" + text.encode(encoding))
    np.testing.assert_array_equal(model.load(path).signal, original.signal)


def _uncompressed(shared_data, tmp_path, bits: int) -> tuple[Path, np.ndarray, float]:
    """The 1.04 file rewritten with uncompressed samples of `bits` bits (0: Plain text)."""
    ecg = model.load(shared_data / V104)
    resolution = 40.0 if bits == 8 else MICROVOLTS_PER_BIT
    codes = np.rint(ecg.signal * 1000 / resolution)
    dtype = "i1" if bits == 8 else "<i2"
    assert np.abs(codes).max() < (127 if bits == 8 else 32767)
    payload = base64.b64encode(codes.astype(dtype).tobytes()).decode()
    encoding = "Base64"
    if bits == 0:
        payload, encoding = " ".join(str(int(c)) for c in codes.reshape(-1)), "Plain"
    text = _xml_text(shared_data / V104)
    text = re.sub(
        r"<parsedwaveforms [^>]*>[^<]*</parsedwaveforms>",
        f'<parsedwaveforms dataencoding="{encoding}" compression="Uncompressed" numberofleads="12" '
        f'leadlabels="{" ".join(STANDARD_LEADS)}" durationperchannel="{ecg.n_samples * 2}" '
        f'samplespersecond="500" resolution="{resolution:g}" bitspersample="{bits}">'
        f"{payload}</parsedwaveforms>",
        text,
    )
    return _write(tmp_path, text), ecg.signal, resolution


@pytest.mark.parametrize("bits", [8, 16, 0])
def test_uncompressed_8_and_16_bit_and_plain_samples(shared_data, tmp_path, bits):
    path, signal, resolution = _uncompressed(shared_data, tmp_path, bits)
    decoded = model.load(path)
    assert decoded.signal.shape == signal.shape
    assert np.abs(decoded.signal - signal).max() <= resolution / 2000 + 1e-6


# --- bad input: each file differs from a good one in the way its name says -------------


def _edit(shared_data: Path, tmp_path: Path, relative: str, edit) -> Path:
    return _write(tmp_path, edit(_xml_text(shared_data / relative)))


def _waveform_bytes(text: str) -> tuple[re.Match, bytes]:
    match = re.search(r"(<parsedwaveforms [^>]*>)([^<]*)(</parsedwaveforms>)", text)
    return match, base64.b64decode("".join(match[2].split()))


def _with_waveform_bytes(text: str, data: bytes) -> str:
    match, _ = _waveform_bytes(text)
    return text[: match.start(2)] + base64.b64encode(data).decode() + text[match.end(2) :]


def _lzw_chunk(codes: list[int]) -> bytes:
    bits = "".join(f"{code:010b}" for code in codes)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _first_chunk_replaced(text: str, payload: bytes) -> str:
    _, data = _waveform_bytes(text)
    size = int.from_bytes(data[:4], "little")
    header = len(payload).to_bytes(4, "little") + data[4:8]
    return _with_waveform_bytes(text, header + payload + data[8 + size :])


def _chunk_size_huge(text: str) -> str:
    _, data = _waveform_bytes(text)
    return _with_waveform_bytes(text, (2**31 - 1).to_bytes(4, "little") + data[4:])


BAD_FILES = {
    "cut in half": (lambda t: t[: len(t) // 2], "malformed XML"),
    "unknown version": (
        lambda t: re.sub(r"<documentversion>[^<]*<", "<documentversion>2.00<", t),
        "Philips Sierra XML documentversion: 2.00 is not supported",
    ),
    "more leads declared than labelled": (
        lambda t: t.replace('numberofleads="12"', 'numberofleads="13"'),
        "leadlabels: names 12 leads but numberofleads is 13",
    ),
    "absurd lead count": (
        lambda t: t.replace('numberofleads="12"', 'numberofleads="100000"'),
        "numberofleads: '100000' is not a lead count",
    ),
    "huge declared duration": (
        lambda t: t.replace('durationperchannel="11000"', 'durationperchannel="4000000000"'),
        "durationperchannel: '4000000000' ms is not a duration",
    ),
    "more samples declared than allowed": (
        lambda t: t.replace('durationperchannel="11000"', 'durationperchannel="600000"').replace(
            'samplespersecond="500"', 'samplespersecond="1000"'
        ),
        "600000 ms at 1000 Hz is 600000 samples per lead, over the 500000 limit",
    ),
    "duration longer than the data": (
        lambda t: t.replace('durationperchannel="11000"', 'durationperchannel="12000"'),
        "lead chunk 1: 5500 samples but durationperchannel declares 6000",
    ),
    "absurd scale": (
        lambda t: t.replace('resolution="5"', 'resolution="1e9"'),
        "resolution: '1e9' uV per bit is not in",
    ),
    "zero sampling rate": (
        lambda t: t.replace('samplespersecond="500"', 'samplespersecond="0"'),
        "sampling frequency 0 Hz",
    ),
    "not base64": (
        lambda t: t.replace("<parsedwaveforms ", "<parsedwaveforms ").replace(
            "</parsedwaveforms>", "!!</parsedwaveforms>"
        ),
        "parsedwaveforms: not valid Base64",
    ),
    "LZW code the dictionary cannot have": (
        lambda t: _first_chunk_replaced(t, _lzw_chunk([300, 1, 2, 3])),
        "lead chunk 1: LZW code 300 is beyond the 256-entry dictionary",
    ),
    "LZW bomb": (  # each code one byte longer than the last: 1.2 KB would give 500 KB
        lambda t: _first_chunk_replaced(t, _lzw_chunk([0] + list(range(256, 1023)))),
        "lead chunk 1: expands beyond the 11002 bytes",
    ),
    "huge declared chunk": (_chunk_size_huge, "declares 2147483647 compressed bytes"),
    "lead chunks missing": (
        lambda t: _with_waveform_bytes(t, _waveform_bytes(t)[1][:-3000]),
        "lead chunk 12: declares",
    ),
}


@pytest.mark.timeout(10)  # a hostile file fails fast: no decoding loop can hang
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_names_format_field_and_problem(shared_data, tmp_path, case):
    edit, fragment = BAD_FILES[case]
    path = _edit(shared_data, tmp_path, V104, edit)
    with pytest.raises(EcgDecodeError) as caught:
        model.load(path)
    assert caught.value.source == str(path)
    assert fragment in caught.value.reason, caught.value.reason
    assert "xxxxxx" not in str(caught.value)  # the file's (anonymised) patient name


def test_lead_count_disagreeing_with_the_data(shared_data, tmp_path):
    """1.03 declares no labels: a channel count above what the XLI stream holds."""
    path = _edit(
        shared_data,
        tmp_path,
        V103,
        lambda t: t.replace("<numberchannelsallocated>12<", "<numberchannelsallocated>16<").replace(
            "STD-12</acquisitiontype>", "custom</acquisitiontype>"
        ),
    )
    ecg = model.load(path)  # the DXL stream carries 16 channels: 16 are there
    assert len(ecg.lead_names) == 16
    text = _xml_text(path)
    _, data = _waveform_bytes(text)
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += 8 + int.from_bytes(data[offset : offset + 4], "little")
    cut = _write(tmp_path, _with_waveform_bytes(text, data[: offsets[14]]), name="cut.xml")
    with pytest.raises(EcgDecodeError, match="holds 14 leads but the file declares 16"):
        model.load(cut)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE restingecgdata [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE restingecgdata [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    ],
)
def test_entities_are_refused(shared_data, tmp_path, doctype):
    path = _edit(shared_data, tmp_path, V103, lambda t: t.replace("?>", "?>" + doctype, 1))
    with pytest.raises(EcgDecodeError, match="refused for safety"):
        model.load(path)
