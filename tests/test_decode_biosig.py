"""BioSig (the C library behind Debian's biosig-tools, `save2gdf`) as the second
implementation for HL7 aECG and standard SCP-ECG: the same files read by both give the
same samples. BioSig reads neither the Healforce SCP files nor Philips XML."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import model
from tests import scp_support as scp

pytestmark = pytest.mark.skipif(
    shutil.which("save2gdf") is None, reason="biosig-tools (save2gdf) not installed"
)
PTBXL = "ptbxl/records500/00000/00001_hr"
LEADS = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]


def biosig_leads(path: Path, tmp_path: Path) -> dict[str, np.ndarray]:
    """Each channel in mV as save2gdf writes it to CSV (header 'I [uV]', ...)."""
    out = tmp_path / "biosig.csv"
    subprocess.run(
        ["save2gdf", "-CSV", str(path), str(out)], check=True, capture_output=True, timeout=60
    )
    header = out.read_text().splitlines()[0]
    names = [column.strip('"').split(" [")[0] for column in header.split(",")]
    values = np.loadtxt(out, delimiter=",", skiprows=1, ndmin=2)
    assert header.count("[uV]") == len(names)
    return {name: values[:, i] / 1000.0 for i, name in enumerate(names)}


def test_aecg_example_equals_biosig(shared_data, tmp_path):
    path = shared_data / "vendor/aecg/fda_example_aecg.xml"
    ours = model.load(path)
    theirs = biosig_leads(path, tmp_path)
    assert set(theirs) == set(ours.lead_names)
    for name, samples in theirs.items():
        np.testing.assert_allclose(ours.lead(name), samples, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("huffman, difference", [("default", 2), ("default", 1), ("none", 0)])
def test_standard_scp_equals_biosig(shared_data, tmp_path, huffman, difference):
    ecg = model.load(shared_data / PTBXL)
    codes = np.stack([np.rint(ecg.lead(n) / 0.005) for n in LEADS]).astype(np.int64)
    record = scp.Record(
        codes, [scp.SCP_LEAD_IDS[n] for n in LEADS], huffman=huffman, difference=difference
    )
    path = tmp_path / "ecg.scp"
    path.write_bytes(scp.build(record))
    ours = model.load(path)
    theirs = biosig_leads(path, tmp_path)
    assert list(theirs) == LEADS
    for name in LEADS:
        np.testing.assert_allclose(ours.lead(name), theirs[name], atol=1e-6, err_msg=name)
