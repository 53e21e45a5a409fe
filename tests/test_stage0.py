"""`ecg-train stage0`: pages from deepfake-ecg's generator and real PTB-XL records, rendered
and measured by the gateway, train the vision tower and connector of the tiny model (CPU);
stage 1 then starts from the folder stage 0 wrote."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import model
from model.ecg import STANDARD_LEADS, Ecg
from model.vlm.tiny_checkpoint import TINY, build_tiny_model
from training import stage0_pages
from training.augment import AugmentConfig
from training.cli import main
from training.stage0 import TRAINED_PARTS
from training.stage0_pages import build_pages, generated_ecgs, read_pages, reading_target
from training.targets import load_scp_statements

pytest.importorskip("deepfakeecg")
STEPS = 3


def _config(root: Path, shared_data: Path, name: str, **extra: object) -> Path:
    lines = {
        "model": root / "tiny",
        "output_dir": root / name,
        "dataset_dir": root / "pages",
        "ptbxl_dir": shared_data / "ptbxl",
        "limit_records": 24,
        "generated": 3,
        "real_copies": 1,
        "dpi": 50,
        "longest_edge": 512,
        "device": "cpu",
        "batch_size": 2,
        "gradient_accumulation": 1,
        "learning_rate": 5.0e-3,
        "lr_scheduler": "constant",
        "warmup_steps": 0,
        "save_steps": 2,
        "eval_samples": 2,
        "augment": "{rotation: {p: 1.0, max: 3.0}, blur: {p: 0.5, max: 1.0}}",
    } | extra
    path = root / f"{name}.yaml"
    path.write_text("".join(f"{key}: {value}\n" for key, value in lines.items()))
    return path


@pytest.fixture(scope="module")
def work(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stage0")
    build_tiny_model(root / "tiny", TINY)
    config = _config(root, shared_data, "s0")
    assert main(["stage0", "--config", str(config), "--max-steps", str(STEPS)]) == 0
    return root


def test_generated_ecgs_are_12_lead_10_s_and_repeatable():
    first = list(generated_ecgs(2, seed=5))
    again = next(iter(generated_ecgs(1, seed=5)))
    other = next(iter(generated_ecgs(1, seed=6)))
    assert len(first) == 2 and first[0].lead_names == STANDARD_LEADS
    assert first[0].sampling_rate == 500 and first[0].duration_s == pytest.approx(10.0)
    assert np.allclose(first[0].signal, again.signal, atol=1e-4)  # batch of 2 vs 1: float noise
    assert not np.allclose(first[0].signal, other.signal, atol=1e-2)
    for ecg in first:
        peak = float(np.abs(ecg.lead("II")).max())
        assert 0.2 < peak < 6.0, peak  # millivolts, as a 12-lead ECG has them
        assert np.allclose(ecg.lead("III"), ecg.lead("II") - ecg.lead("I"), atol=1e-5)
        rate = model.analyze(ecg).measurements.heart_rate_bpm
        assert rate is not None and 30 < rate < 200


def test_reading_target_says_what_the_measurement_engine_read(shared_data: Path):
    ecg = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    report = model.analyze(ecg)
    groups = {
        code: s.group
        for code, s in load_scp_statements(shared_data / "ptbxl" / "scp_statements.csv").items()
    }
    text = reading_target(report, groups)
    rate = round(report.measurements.heart_rate_bpm)
    assert text.startswith("Rhythm: Sinus rhythm. Heart rate ") and f" {rate} bpm;" in text
    assert f"QRS axis {round(report.measurements.qrs_axis_deg)}°" in text
    assert text.endswith("Conduction: normal.")


def test_pages_hold_real_and_generated_ecgs_never_fold_10(work: Path, shared_data: Path):
    train = read_pages(work / "pages", "train")
    val = read_pages(work / "pages", "val")
    sources = {row["source"] for row in train}
    assert sources == {"ptbxl", "deepfake-ecg"}
    import pandas as pd

    folds = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")[
        "strat_fold"
    ]

    def ecg_id(row: dict) -> int:
        return int(re.fullmatch(r"ptbxl-(\d{5})-\d+", row["id"]).group(1))

    real = [r for r in train if r["source"] == "ptbxl"]
    assert real and all(folds[ecg_id(r)] in range(1, 9) for r in real)
    assert val and all(folds[ecg_id(r)] == 9 for r in val)
    clean = [r for r in train if r["id"].endswith("-0") and r["source"] == "ptbxl"]
    assert clean and all(r["augmentation"] is None for r in clean)
    assert all(r["augmentation"] for r in train if r["id"].endswith("-1"))
    for row in train[:3]:
        assert (work / "pages" / row["image"]).is_file()
        rate = round(row["rule_report"]["measurements"]["heart_rate_bpm"])
        assert f"Heart rate {rate} bpm" in row["target_reading"]


def _empty_ptbxl(directory: Path) -> Path:
    """A PTB-XL folder with no records: the pages come from the generator only."""
    directory.mkdir()
    (directory / "ptbxl_database.csv").write_text(
        "ecg_id,scp_codes,report,heart_axis,strat_fold,filename_lr,filename_hr\n"
    )
    (directory / "scp_statements.csv").write_text(
        ",description,diagnostic_class,rhythm,Statement Category\n"
    )
    return directory


def test_a_rebuild_cut_short_is_not_taken_for_the_pages_built_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    ptbxl, pages = _empty_ptbxl(tmp_path / "ptbxl"), tmp_path / "pages"
    first = build_pages(pages, ptbxl, [1], 2, 0, 50, AugmentConfig(), seed=0)
    assert first["samples"]["train"] == len(read_pages(pages, "train")) == 2
    generate = stage0_pages.generated_ecgs

    def one_then_interrupted(count: int, seed: int) -> Iterator[Ecg]:
        yield next(iter(generate(count, seed)))
        raise KeyboardInterrupt

    monkeypatch.setattr(stage0_pages, "generated_ecgs", one_then_interrupted)
    with pytest.raises(KeyboardInterrupt):  # other settings: train.jsonl is being rewritten
        build_pages(pages, ptbxl, [1], 2, 0, 60, AugmentConfig(), seed=0)
    monkeypatch.undo()
    again = build_pages(pages, ptbxl, [1], 2, 0, 50, AugmentConfig(), seed=0)
    assert again["samples"]["train"] == len(read_pages(pages, "train")) == 2


def test_only_vision_tower_and_connector_change_and_the_model_loads(work: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    before = AutoModelForImageTextToText.from_pretrained(work / "tiny").state_dict()
    after = AutoModelForImageTextToText.from_pretrained(work / "s0").state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith(TRAINED_PARTS) for name in changed)
    assert any(name.startswith("model.vision_model.") for name in changed)
    assert any(name.startswith("model.connector.") for name in changed)
    assert AutoProcessor.from_pretrained(work / "s0", backend="pil").image_seq_len == 64
    metrics = json.loads((work / "s0" / "metrics.json").read_text())
    assert metrics["steps_done"] == STEPS and len(metrics["losses"]) == STEPS
    assert metrics["val_loss"] is not None
    assert "stage 0 (vision pretraining)" in (work / "s0" / "README.md").read_text()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(
    work: Path, shared_data: Path, capsys: pytest.CaptureFixture
):
    config = _config(work, shared_data, "s0-split")
    assert main(["stage0", "--config", str(config), "--max-steps", "2"]) == 0
    assert main(["stage0", "--config", str(config), "--max-steps", str(STEPS), "--resume"]) == 0
    assert f"stage 0: {STEPS} of {STEPS} steps on " in capsys.readouterr().out
    metrics = json.loads((work / "s0-split" / "metrics.json").read_text())
    assert metrics["resumed_from"] == 2 and metrics["steps_done"] == STEPS
    straight = load_file(work / "s0" / "checkpoints" / f"step-{STEPS}" / "trained.safetensors")
    resumed = load_file(work / "s0-split" / "checkpoints" / f"step-{STEPS}" / "trained.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_resume_without_checkpoint_is_a_clear_error(work: Path, shared_data: Path):
    config = _config(work, shared_data, "s0-none")
    assert main(["stage0", "--config", str(config), "--resume"]) == 2


def test_stage1_continues_from_stage0(work: Path, shared_data: Path):
    """Stage 1's base is stage 0's folder: its 4-bit load and LoRA training run on it."""
    dataset = work / "dataset"
    (work / "dataset.yaml").write_text(
        f"ptbxl_dir: {shared_data / 'ptbxl'}\noutput_dir: {dataset}\nlimit: 12\ndpi: 50\n"
    )
    assert main(["dataset", "--config", str(work / "dataset.yaml")]) == 0
    (work / "stage1.yaml").write_text(
        f"stage: 1\ndataset_dir: {dataset}\nmodel: {work / 's0'}\noutput_dir: {work / 'stage1'}\n"
        "longest_edge: 512\ndevice: cpu\nlimit_samples: 2\nbatch_size: 2\n"
        "gradient_accumulation: 1\neval_samples: 0\nlora: {r: 8, alpha: 16}\n"
    )
    assert main(["stage1", "--config", str(work / "stage1.yaml"), "--max-steps", "1"]) == 0
    adapter = json.loads((work / "stage1" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(work / "s0")


@pytest.mark.parametrize(
    ("name", "edge", "device"), [("stage0", 512, "auto"), ("stage0-gpu", 1536, "cuda")]
)
def test_cpu_and_gpu_recipes_parse(name: str, edge: int, device: str):
    from training.config import load_yaml_config
    from training.stage0 import Stage0Config

    config = load_yaml_config(Path(f"config/training/{name}.yaml"), Stage0Config)
    assert (config.longest_edge, config.device) == (edge, device)
    assert 10 not in config.train_folds and 9 not in config.train_folds
    assert config.augment.rotation.p > 0  # the augmentations of ecg-train dataset
