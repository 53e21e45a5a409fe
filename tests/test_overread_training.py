"""`ecg-train dataset --from-overreads`: a confirmed report becomes a training pair in
the dataset's JSONL format, its page rendered as the training pages are, its targets
the physician's statements and measurements; no patient data leaves the store."""

from __future__ import annotations

import contextlib
import io
import json

from overread_support import PATIENT_ID, RECORDS, SMITH, Site
from PIL import Image

from gateway.overread import ReportEdit, StatementEdit
from training.cli import main
from training.dataset import SAMPLE_FIELDS, SPLITS, read_samples


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["dataset", *args])
    return code, out.getvalue(), err.getvalue()


def test_confirmed_overreads_are_exported_as_training_pairs(tmp_path, shared_data):
    site = Site(tmp_path / "data", None)
    try:
        confirmed = site.receive(shared_data, RECORDS[0])
        site.receive(shared_data, RECORDS[1])  # left preliminary: not exported
        machine = site.service.view(confirmed, SMITH).report
        edit = ReportEdit(
            [StatementEdit("AFIB"), StatementEdit("LVH")],
            f"AF with LVH in Doe, {PATIENT_ID}; unchanged since 2024-03-01.",
            {"qrs_ms": 102.0},
        )
        site.service.confirm(confirmed, SMITH, edit, base_version=1)
        uid = site.store.get_job(confirmed).sop_instance_uid
    finally:
        site.close()
    out = tmp_path / "pairs"
    code, printed, _ = _run(
        "--from-overreads",
        str(tmp_path / "data" / "gateway.sqlite3"),
        "--ptbxl",
        str(shared_data / "ptbxl"),
        "--out",
        str(out),
    )
    assert code == 0, printed
    samples = [s for split in SPLITS for s in read_samples(out, split)]
    assert len(samples) == 1
    [sample] = samples
    assert set(sample) == set(SAMPLE_FIELDS)
    assert sample["scp_codes"] == {"AFIB": 100.0, "LVH": 100.0}
    assert "trial fibrillation" in sample["target_report"] and "102" in sample["target_report"]
    assert sample["superclasses"] == ["HYP"]
    assert sample["rule_report"]["statements"] == [
        s.model_dump(mode="json") for s in machine.statements
    ]
    assert sample["original_report"] == "AF with LVH in ***, ***; unchanged since ***."
    exported = "".join(p.read_text() for p in out.glob("*.json*"))
    assert PATIENT_ID not in exported and "Doe" not in exported and uid not in exported
    with Image.open(out / sample["image"]) as page:
        assert page.format == "PNG" and page.width > 1000
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(manifest["counts"].get(split, 0) for split in SPLITS) == 1


def test_a_missing_source_is_a_clear_error(tmp_path):
    code, _, err = _run("--from-overreads", str(tmp_path / "nowhere.yaml"))
    assert code == 2 and "nowhere.yaml: no such gateway config or store file" in err
