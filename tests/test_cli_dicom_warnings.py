"""The operator commands that read an ECG file (analyze, render, convert, routes test) on a real DICOM
ECG whose patient values fail pydicom's checks: pydicom warns quoting each value (the
birth date, the over-long ID and name) to stderr; the commands report each problem by
its tag and kind instead, and no value reaches stderr."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pydicom
import pytest

from tests.delivery_support import DICOM_ECG

PATIENT_ID = "PID-" + "7" * 61  # 65 characters: LO allows 64
AGE, SEX = b"47yr", b"o "  # AS is 3 digits and a unit letter (047Y); CS is upper case


@pytest.fixture
def bad_values(shared_data, tmp_path) -> Path:
    """The real DICOM ECG with three patient values corrupted as a cart might write them
    (pydicom will not write the bad age or sex itself: they are set in the bytes)."""
    ds = pydicom.dcmread(shared_data / DICOM_ECG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # writing the long ID warns too
        ds.PatientID = PATIENT_ID
        ds.PatientAge, ds.PatientSex = "047Y", "O"
        path = tmp_path / "bad-values.dcm"
        ds.save_as(path)
    data = path.read_bytes()
    sex_element = b"\x10\x00\x40\x00CS\x02\x00"
    assert data.count(b"047Y") == 1 and data.count(sex_element + b"O ") == 1
    path.write_bytes(data.replace(b"047Y", AGE).replace(sex_element + b"O ", sex_element + SEX))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "{input}"],
        ["convert", "{input}", "-o", "{out}/converted.dcm"],
        ["render", "{input}", "-o", "{out}/page.png"],
        ["routes", "test", "{input}", "-r", "{routes}"],
    ],
    ids=["analyze", "convert", "render", "routes-test"],
)
def test_a_value_pydicom_warns_about_is_named_by_tag_never_quoted(bad_values, tmp_path, command):
    routes = Path(__file__).parents[1] / "config" / "routes.yaml"
    args = [part.format(input=bad_values, out=tmp_path, routes=routes) for part in command]
    done = _cli(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    for value in (PATIENT_ID, "'o'", "47yr"):
        assert value not in done.stderr
    read = "warning: (0010,0020) PatientID (LO): The value length (66) exceeds the maximum"
    assert read in done.stderr
    if command[0] == "convert":  # the values written into DICOM: checked as pydicom sets them
        assert "warning: pydicom: Invalid value for VR AS\n" in done.stderr
        assert "warning: pydicom: Invalid value for VR CS\n" in done.stderr
