"""`ecg-train dataset` on 40 real PTB-XL records: files, JSONL fields, splits, counts, targets."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from model.report import Measurements
from training.cli import main
from training.config import TrainingConfigError, load_yaml_config
from training.dataset import SAMPLE_FIELDS, SPLITS, DatasetConfig, read_samples
from training.targets import (
    alignment_target,
    load_scp_statements,
    parse_scp_codes,
    report_target,
)

REPO = Path(__file__).resolve().parent.parent
RECORDS = 40
DPI = 72  # below the shipped 140 dpi to keep the test fast; every step is the same


@pytest.fixture(scope="module")
def built(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """The shipped dataset.yaml on the first 40 records, built once through the CLI."""
    out = tmp_path_factory.mktemp("dataset")
    args = [
        "dataset",
        "--config",
        str(REPO / "config/training/dataset.yaml"),
        "--ptbxl",
        str(shared_data / "ptbxl"),
        "--out",
        str(out),
        "--limit",
        str(RECORDS),
        "--dpi",
        str(DPI),
    ]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    samples = {split: list(read_samples(out, split)) for split in SPLITS}
    return out, samples, printed.getvalue()


def _database(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")


def test_every_record_lands_in_the_split_of_its_strat_fold(built, shared_data: Path) -> None:
    _, samples, _ = built
    folds = _database(shared_data)["strat_fold"].iloc[:RECORDS]
    expected = {
        ecg_id: "train" if fold <= 8 else "val" if fold == 9 else "test"
        for ecg_id, fold in folds.items()
    }
    seen = {s["ecg_id"]: s["split"] for split in SPLITS for s in samples[split] if s["copy"] == 0}
    assert seen == expected
    for split in SPLITS:
        assert all(s["split"] == split for s in samples[split])
        assert all(s["strat_fold"] == folds[s["ecg_id"]] for s in samples[split])


def test_jsonl_lines_carry_every_field_and_point_at_real_images(built) -> None:
    out, samples, _ = built
    ids = set()
    for split in SPLITS:
        for sample in samples[split]:
            assert tuple(sorted(sample)) == tuple(sorted(SAMPLE_FIELDS))
            assert sample["id"] not in ids
            ids.add(sample["id"])
            with Image.open(out / sample["image"]) as image:
                params = sample["augmentation"]
                if params is None:  # the renderer's own palette PNG, untouched
                    assert image.format == "PNG" and image.mode == "P"
                else:
                    jpeg = params["jpeg_quality"] is not None
                    assert image.format == ("JPEG" if jpeg else "PNG") and image.mode == "RGB"
                assert image.size == (round(11 * DPI), round(8.5 * DPI))  # US letter page
            assert sample["target_report"].splitlines()[-1].startswith("Measurements: heart rate")
            assert "Axis: QRS axis" in sample["target_alignment"]
            assert sample["original_report"]
            assert sample["rule_report"]["engine"]["name"] == "measure"
    assert len(ids) == sum(len(v) for v in samples.values())


def test_train_is_augmented_and_balanced_val_and_test_are_clean(built) -> None:
    out, samples, printed = built
    train = samples["train"]
    originals = [s for s in train if s["copy"] == 0]
    clean = [s for s in originals if s["augmentation"] is None]
    # clean_share 0.5: about half of stage 1's pages are the page the gateway renders
    assert 0.25 * len(originals) <= len(clean) <= 0.75 * len(originals)
    for sample in clean:
        assert sample["image"].endswith(".png")
        with Image.open(out / sample["image"]) as page:
            assert page.size == (792, 612)  # US letter at 72 dpi, the 3x4+1 render
    assert all(s["augmentation"] is not None for s in train if s["copy"] > 0)
    assert all(s["augmentation"] is None for s in samples["val"] + samples["test"])
    copies = [s for s in train if s["copy"] > 0]
    assert copies, "balancing added copies of rare classes"
    by_id = {s["ecg_id"]: s for s in originals}
    for copy in copies:
        original = by_id[copy["ecg_id"]]
        assert copy["target_report"] == original["target_report"]
        assert copy["augmentation"] != original["augmentation"]
    assert len({s["augmentation"]["layout"] for s in train if s["augmentation"]}) > 1
    assert "| class | before | after | target |" in printed
    assert max(Counter(s["ecg_id"] for s in train).values()) <= 1 + 10


def test_manifest_counts_match_the_jsonl(built, shared_data: Path) -> None:
    out, samples, printed = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["records"] == RECORDS
    assert Path(manifest["source"]["ptbxl_dir"]) == (shared_data / "ptbxl").resolve()
    for split in SPLITS:
        entry = manifest["splits"][split]
        assert entry["samples"] == len(samples[split])
        assert entry["records"] == sum(s["copy"] == 0 for s in samples[split])
        superclass_counts = Counter(c for s in samples[split] for c in s["superclasses"])
        for cls, n in superclass_counts.items():
            assert entry["class_counts"][cls] == n
        assert f"{split}: {entry['records']} records, {entry['samples']} samples" in printed
    balance = manifest["balance"]
    assert balance["extra_samples"] == sum(s["copy"] > 0 for s in samples["train"])
    for cls, n in balance["after"].items():
        assert manifest["splits"]["train"]["class_counts"][cls] == n
        assert f"| {cls} | {balance['before'][cls]} | {n} |" in printed


def test_clean_share_zero_and_one(tmp_path: Path) -> None:
    from training.augment import AugmentConfig, is_clean_copy

    never, always = AugmentConfig(clean_share=0.0), AugmentConfig(clean_share=1.0)
    assert not any(is_clean_copy(never, 0, ecg_id, 0) for ecg_id in range(50))
    assert all(is_clean_copy(always, 0, ecg_id, 0) for ecg_id in range(50))
    assert not is_clean_copy(always, 0, 1, 1)  # balancing copies are always augmented


def test_stage_one_reads_originals_and_stage_two_all_copies(built) -> None:
    out, samples, _ = built
    stage1 = list(read_samples(out, "train", originals_only=True))
    assert [s["copy"] for s in stage1] == [0] * len(stage1)
    assert len(stage1) < len(samples["train"])


def test_report_target_follows_the_reading_order(shared_data: Path) -> None:
    statements = load_scp_statements(shared_data / "ptbxl" / "scp_statements.csv")
    codes = parse_scp_codes(
        "{'IMI': 35.0, 'LVH': 100.0, 'NDT': 100.0, 'LAFB': 100.0, 'PVC': 100.0, 'SR': 0.0}"
    )
    measured = Measurements(
        heart_rate_bpm=71.6,
        pr_ms=182,
        qrs_ms=98,
        qt_ms=396,
        qtc_bazett_ms=432,
        qrs_axis_deg=-41,
        t_axis_deg=50,
    )
    assert report_target(codes, "ALAD", measured, statements).splitlines() == [
        "Rhythm: sinus rhythm; ventricular premature complex.",
        "Conduction: left anterior fascicular block.",
        "Axis: marked left axis deviation.",
        "Hypertrophy: left ventricular hypertrophy.",
        "ST-T: non-diagnostic T abnormalities.",
        "Infarction: possible inferior myocardial infarction.",
        (
            "Measurements: heart rate 72 bpm; PR 182 ms; QRS 98 ms; QT 396 ms; "
            "QTc (Bazett) 432 ms; P axis not measurable; QRS axis -41°; T axis 50°."
        ),
    ]
    assert alignment_target(codes, "ALAD", measured, statements) == (
        "Rhythm: sinus rhythm. Heart rate 72 bpm; PR 182 ms; QRS 98 ms; QT 396 ms; "
        "QTc (Bazett) 432 ms. Axis: QRS axis -41°; marked left axis deviation."
    )


def test_targets_reject_codes_and_axes_they_do_not_know(shared_data: Path) -> None:
    statements = load_scp_statements(shared_data / "ptbxl" / "scp_statements.csv")
    with pytest.raises(ValueError, match="XYZ"):
        report_target({"XYZ": 100.0}, None, Measurements(), statements)
    with pytest.raises(ValueError, match="heart_axis 'UP'"):
        report_target({"SR": 0.0}, "UP", Measurements(), statements)
    with pytest.raises(ValueError, match="dict literal"):
        parse_scp_codes("['SR']")


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "dataset.yaml"
    bad.write_text("dpi: 20\nsplits: {train: [1], val: [1], test: [10]}\n")
    with pytest.raises(TrainingConfigError) as error:
        load_yaml_config(bad, DatasetConfig)
    assert str(bad) in str(error.value) and "dpi" in str(error.value)
    bad.write_text("splits: {train: [1], val: [1], test: [10]}\n")
    with pytest.raises(TrainingConfigError, match="more than one split"):
        load_yaml_config(bad, DatasetConfig)
    assert main(["dataset", "--config", str(tmp_path / "missing.yaml")]) == 2
