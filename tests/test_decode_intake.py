"""The new formats through a watched folder restricted to each of them: a Philips, aECG or
SCP-ECG file becomes one job; a file of another format goes to error/ with the reason."""

from __future__ import annotations

import shutil
from contextlib import closing

import pytest

from tests.test_watch_folders import Intakes

FILES = {
    "philips-xml": "vendor/sierra/2020-5-18_15-48-11.xml",
    "hl7-aecg": "vendor/aecg/fda_example_aecg.xml",
    "scp-ecg": "vendor/scp/demodata/ECG_0/62.SCP",
}


@pytest.fixture
def intakes(tmp_path):
    with closing(Intakes(tmp_path / "gw")) as made:
        yield made


@pytest.mark.parametrize("file_format", list(FILES))
def test_a_folder_for_the_format_takes_the_file(intakes, tmp_path, shared_data, file_format):
    folder = tmp_path / "carts"
    folder.mkdir()
    watcher = intakes.watcher(folder, format=file_format, source="cardiology")
    shutil.copyfile(shared_data / FILES[file_format], folder / "ecg")
    watcher.poll()
    assert watcher.poll() == 1
    [job] = intakes.jobs()
    assert (job.kind, job.source) == ("ecg-waveform", "cardiology")
    assert sorted(p.name for p in (folder / "processed").iterdir()) == ["ecg"]


def test_a_folder_for_philips_refuses_an_aecg(intakes, tmp_path, shared_data):
    folder = tmp_path / "carts"
    folder.mkdir()
    watcher = intakes.watcher(folder, format="philips-xml")
    shutil.copyfile(shared_data / FILES["hl7-aecg"], folder / "ecg.xml")
    watcher.poll()
    watcher.poll()
    assert intakes.jobs() == []
    reason = (folder / "error" / "ecg.xml.error.txt").read_text()
    assert "wrong-format: expected philips-xml, the file is hl7-aecg" in reason
