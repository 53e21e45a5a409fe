"""`ecg-gateway convert`: every readable format out as DICOM ECG and HL7 aECG, read back
equal within the writers' quantisation; the DICOM checked by dicom3tools' dciodvfy and
dcmtk's dcmdump, the aECG against the structure of the HL7 ballot example."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import model
from gateway.cli import main
from model.dicom_write import sensitivity_uv

SOURCES = [
    "vendor/sierra/129DYPRG.XML",
    "vendor/sierra/2020-5-18_15-48-11.xml",
    "vendor/aecg/fda_example_aecg.xml",
    "vendor/muse/muse-sinus.xml",
    "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm",
    "ptbxl/records500/00000/00001_hr",
    "vendor/scp/demodata/ECG_0/62.SCP",  # 150 Hz: Ambulatory ECG, the IOD that admits it
]
NS = {"h": "urn:hl7-org:v3"}
# What the HL7 aECG implementation guide requires of every document (the ballot example
# has all of it); a path per line, '@' for a required attribute.
SUBJECT = "h:componentOf/h:timepointEvent/h:componentOf/h:subjectAssignment"
AECG_REQUIRED = (
    "h:id@root",
    "h:code@code",
    "h:effectiveTime/h:center@value",
    f"{SUBJECT}/h:subject/h:trialSubject/h:id",
    f"{SUBJECT}/h:componentOf/h:clinicalTrial/h:id",
    "h:component/h:series/h:id@root",
    "h:component/h:series/h:code@code",
    "h:component/h:series/h:effectiveTime/h:low@value",
    "h:component/h:series/h:component/h:sequenceSet/h:component/h:sequence/h:value",
)


def _convert(source: Path, out: Path, capsys) -> str:
    assert main(["convert", str(source), "-o", str(out)]) == 0
    return capsys.readouterr().out


def _assert_same_ecg(original: model.Ecg, again: model.Ecg) -> None:
    """Equal within half of each lead's quantisation step (the writers' rounding)."""
    assert again.lead_names == original.lead_names
    assert again.sampling_rate == pytest.approx(original.sampling_rate)
    assert again.signal.shape == original.signal.shape
    for index, lead in enumerate(original.signal):
        half_step_mv = sensitivity_uv(lead) / 2000
        assert np.abs(again.signal[index] - lead).max() <= half_step_mv + 1e-6
    if original.median_beats is not None:
        assert again.median_sampling_rate == original.median_sampling_rate
        for index, beat in enumerate(original.median_beats):
            step = sensitivity_uv(beat) / 2000
            assert np.abs(again.median_beats[index] - beat).max() <= step + 1e-6
    before, after = original.metadata, again.metadata
    for field in ("patient_id", "patient_birth_date", "patient_sex", "device_model", "filters"):
        assert getattr(after, field) == getattr(before, field), field
    if before.acquisition_time is not None:  # else the writers put the conversion time
        assert after.acquisition_time == before.acquisition_time


@pytest.mark.parametrize("suffix, kind", [(".dcm", "DICOM ECG waveform"), (".xml", "HL7 aECG")])
@pytest.mark.parametrize("relative", SOURCES)
def test_round_trip(shared_data, tmp_path, capsys, relative, suffix, kind):
    """The same ECG back, with its patient, device, measurements and statements (DICOM
    carries the last two as Waveform Annotations, aECG as an annotation set)."""
    original = model.load(shared_data / relative)
    out = tmp_path / f"out{suffix}"
    assert kind in _convert(shared_data / relative, out, capsys)
    again = model.load(out)
    _assert_same_ecg(original, again)
    assert again.metadata.patient_name == original.metadata.patient_name
    assert again.metadata.device_measurements == original.metadata.device_measurements
    assert again.metadata.device_statements == original.metadata.device_statements
    if suffix == ".dcm":
        dump = subprocess.run(
            ["dcmdump", "-q", str(out)], check=False, capture_output=True, text=True
        )
        assert dump.returncode == 0 and "(5400,0100)" in dump.stdout, dump.stderr


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
@pytest.mark.parametrize("relative", SOURCES)
def test_dicom_output_passes_dciodvfy(shared_data, tmp_path, capsys, relative):
    out = tmp_path / "out.dcm"
    _convert(shared_data / relative, out, capsys)
    check = subprocess.run(["dciodvfy", str(out)], check=False, capture_output=True, text=True)
    report = check.stdout + check.stderr
    assert "Error" not in report, report
    assert any(iod in report for iod in ("TwelveLeadECG", "GeneralECG", "AmbulatoryECG")), report


def _structure_problems(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    problems = [] if root.tag == "{urn:hl7-org:v3}AnnotatedECG" else [f"root {root.tag}"]
    for required in AECG_REQUIRED:
        steps, _, attribute = required.partition("@")
        found = root.find(steps, NS)
        if found is None or (attribute and not found.get(attribute)):
            problems.append(required)
    sequences = root.findall(
        "h:component/h:series/h:component/h:sequenceSet/h:component/h:sequence", NS
    )
    for sequence in sequences:
        value = sequence.find("h:value", NS)
        kind = value.get("{http://www.w3.org/2001/XMLSchema-instance}type")
        if kind == "SLIST_PQ":
            for part in ("h:origin", "h:scale", "h:digits"):
                if value.find(part, NS) is None:
                    problems.append(f"{sequence.find('h:code', NS).get('code')} {part}")
        elif kind not in ("GLIST_TS", "GLIST_PQ"):
            problems.append(f"sequence value type {kind}")
    return problems


def test_aecg_output_has_the_structure_of_the_hl7_example(shared_data, tmp_path, capsys):
    assert _structure_problems(shared_data / "vendor/aecg/fda_example_aecg.xml") == []
    out = tmp_path / "out.xml"
    _convert(shared_data / "vendor/sierra/2020-5-18_15-48-11.xml", out, capsys)
    assert _structure_problems(out) == []
    derived = (
        ET.parse(out).getroot().find("h:component/h:series/h:derivation/h:derivedSeries/h:code", NS)
    )
    assert derived.get("code") == "REPRESENTATIVE_BEAT"


def test_bad_output_name_and_bad_input(shared_data, tmp_path, capsys):
    source = shared_data / "vendor/aecg/minimum_aecg.xml"
    assert main(["convert", str(source), "-o", str(tmp_path / "out.pdf")]) == 2
    assert "must end in .dcm or .xml" in capsys.readouterr().err
    bad = tmp_path / "bad.xml"
    bad.write_text("<AnnotatedECG xmlns='urn:hl7-org:v3'/>")
    assert main(["convert", str(bad), "-o", str(tmp_path / "out.dcm")]) == 2
    assert "HL7 aECG series" in capsys.readouterr().err
    assert not (tmp_path / "out.dcm").exists()


def test_a_recording_no_dicom_ecg_iod_holds_is_refused(shared_data, tmp_path, capsys):
    """13 leads at 1 kHz fit; the 13-sample minimal aECG at 500 Hz fits too; a 2 kHz
    recording fits none (ECG IODs stop at 1 kHz): a clear error, no file."""
    source = tmp_path / "fast.xml"
    text = (shared_data / "vendor/aecg/minimum_aecg.xml").read_text()
    source.write_text(text.replace('value="0.002" unit="s"', 'value="0.0005" unit="s"'))
    out = tmp_path / "fast.dcm"
    assert main(["convert", str(source), "-o", str(out)]) == 2
    assert "no DICOM ECG IOD holds 1 leads at 2000 Hz" in capsys.readouterr().err
    assert not out.exists()
    assert main(["convert", str(source), "-o", str(tmp_path / "fast.xml")]) == 0
