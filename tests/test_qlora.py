"""Two-stage QLoRA on the tiny SmolVLM-shaped model and 40 real PTB-XL records (CPU).

The tiny model's widths are multiples of 64 here: bitsandbytes' CPU 4-bit kernels
quantise in blocks of 64 input features (a 32-wide vision tower cannot be quantised).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import model
from model.engine import EngineChoice
from model.vlm.prompt import REPORT_INSTRUCTION, report_messages, report_prompt
from model.vlm.settings import VlmSettings
from model.vlm.tiny_checkpoint import TINY, build_tiny_model
from tests import dicom_samples as samples
from tests.test_engines import gateway_with
from training.cli import main
from training.collate import IGNORE_INDEX, Collator, prompt_for
from training.config import TrainingConfigError, load_yaml_config
from training.dataset import read_samples
from training.qlora import StageConfig

REPO = Path(__file__).resolve().parent.parent
STEPS = 6


def _quiet_main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def work(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset of 40 records (augmented, balanced) and the 4-bit-quantisable tiny model."""
    root = tmp_path_factory.mktemp("qlora")
    (root / "dataset.yaml").write_text(
        f"ptbxl_dir: {shared_data / 'ptbxl'}\noutput_dir: {root / 'dataset'}\nlimit: 40\ndpi: 50\n"
    )
    code, _ = _quiet_main(["dataset", "--config", str(root / "dataset.yaml")])
    assert code == 0
    build_tiny_model(root / "tiny", TINY)
    for stage in (1, 2):
        (root / f"stage{stage}.yaml").write_text(
            f"stage: {stage}\ndataset_dir: {root / 'dataset'}\nmodel: {root / 'tiny'}\n"
            f"output_dir: {root / f'stage{stage}'}\nlongest_edge: 512\ndevice: cpu\n"
            # A fixed batch of two pages, trained on repeatedly: the loss must fall.
            "limit_samples: 2\nbatch_size: 2\ngradient_accumulation: 1\n"
            "learning_rate: 5.0e-3\nlr_scheduler: constant\nsave_steps: 3\neval_samples: 2\n"
            "lora: {r: 8, alpha: 16, dropout: 0.0}\n"
            + (f"stage1_adapter: {root / 'stage1'}\nmode: hybrid\n" if stage == 2 else "")
        )
    return root


@pytest.fixture(scope="module")
def adapters(work: Path) -> dict[int, dict]:
    """Stage 1 then stage 2 through the CLI; their metrics.json."""
    metrics = {}
    for stage in (1, 2):
        code, printed = _quiet_main(
            [
                f"stage{stage}",
                "--config",
                str(work / f"stage{stage}.yaml"),
                "--max-steps",
                str(STEPS),
            ]
        )
        assert code == 0, printed
        assert f"stage {stage}: {STEPS} steps on 2 samples" in printed
        metrics[stage] = json.loads((work / f"stage{stage}" / "metrics.json").read_text())
    return metrics


def test_each_stage_lowers_the_loss_and_writes_adapter_and_model_card(
    work: Path, adapters: dict[int, dict]
) -> None:
    for stage, metrics in adapters.items():
        losses = metrics["train_losses"]
        assert len(losses) == STEPS
        assert losses[-1] < losses[0] - 0.05, losses
        assert losses[-1] < min(losses[:2])
        assert metrics["val_loss"] is not None
        folder = work / f"stage{stage}"
        assert (folder / "adapter_model.safetensors").is_file()
        card = (folder / "README.md").read_text()
        assert f"base_model: {work / 'tiny'}" in card and f"stage {stage}" in card
        assert f"| first train loss | {losses[0]:.4f} |" in card
        assert f"| final train loss | {losses[-1]:.4f} |" in card
        assert '"learning_rate": 0.005' in card and str(work / "dataset") in card
        trained = json.loads((folder / "adapter_config.json").read_text())["target_modules"]
        assert "text_model" in trained
        # The card says how to serve it: the prompt and the base precision it trained on.
        mode = "vlm" if stage == 1 else "hybrid"
        assert f"mode: {mode}, quantization: 4bit" in card and "base_precision: nf4" in card
        assert "r=8 alpha=16 dropout=0.0" in card
        assert metrics["serving_mode"] == mode and metrics["base_precision"] == "nf4"
    # Stage 2 continues from stage 1: it starts below where stage 1 started.
    assert adapters[2]["train_losses"][0] < adapters[1]["train_losses"][0]


def test_resume_continues_from_the_saved_step(work: Path, adapters: dict[int, dict]) -> None:
    out = work / "resumed"
    config = str(work / "stage1.yaml")
    code, _ = _quiet_main(["stage1", "--config", config, "--out", str(out), "--max-steps", "3"])
    assert code == 0 and (out / "checkpoints" / "step-3").is_dir()
    code, printed = _quiet_main(
        ["stage1", "--config", config, "--out", str(out), "--max-steps", str(STEPS), "--resume"]
    )
    assert code == 0 and "(from step 3)" in printed
    resumed = json.loads((out / "metrics.json").read_text())["train_losses"]
    # Same seed, same batches, restored optimizer state: the run is the uninterrupted one.
    assert resumed == pytest.approx(adapters[1]["train_losses"], abs=1e-4)


def test_resume_without_checkpoint_is_a_clear_error(work: Path, tmp_path: Path) -> None:
    code = main(
        ["stage1", "--config", str(work / "stage1.yaml"), "--out", str(tmp_path / "x"), "--resume"]
    )
    assert code == 2


def test_stage_config_rejects_bad_values(work: Path, tmp_path: Path) -> None:
    bad = tmp_path / "stage2.yaml"
    bad.write_text("stage: 2\noutput_dir: x\n")
    with pytest.raises(TrainingConfigError, match="stage1_adapter"):
        load_yaml_config(bad, StageConfig)
    with pytest.raises(TrainingConfigError, match="longest_edge"):
        load_yaml_config(work / "stage1.yaml", StageConfig, longest_edge=1000)
    for stage in (1, 2):
        load_yaml_config(REPO / f"config/training/stage{stage}.yaml", StageConfig)


def test_stage2_takes_the_stage1_adapters_lora_shape_or_refuses_another(
    work: Path, adapters: dict[int, dict]
) -> None:
    from training.qlora import continued_lora

    def stage2(**lora: object) -> StageConfig:
        return StageConfig(
            stage=2,
            output_dir=work / "unused",
            stage1_adapter=work / "stage1",
            lora=lora or None,
        )

    inherited = continued_lora(stage2())
    assert (inherited.r, inherited.lora_alpha) == (8, 16)
    assert continued_lora(stage2(r=8, alpha=16, dropout=0.2)).lora_dropout == 0.2
    with pytest.raises(ValueError, match=r"r 8 \(configured 16\), alpha 16 \(configured 32\)"):
        continued_lora(stage2(r=16, alpha=32))
    with pytest.raises(ValueError, match="stage 1 trains the vlm prompt only"):
        StageConfig(stage=1, output_dir=work / "unused", mode="hybrid")


def test_labels_keep_only_the_answer_and_prompt_matches_serving(
    work: Path, shared_data: Path
) -> None:
    from model.vlm.loading import load_processor

    processor = load_processor(str(work / "tiny"))
    samples = list(read_samples(work / "dataset", "train"))[:2]
    batch = Collator(processor, work / "dataset", 2, "hybrid", 512)(samples)
    tokenizer = processor.tokenizer
    labels, ids = batch["labels"], batch["input_ids"]
    assert batch["pixel_values"].shape[0] == 2
    assert (labels[ids == processor.image_token_id] == IGNORE_INDEX).all()
    assert (labels[batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    for row, sample in enumerate(samples):
        kept = labels[row][labels[row] != IGNORE_INDEX]
        assert tokenizer.decode(kept) == f" {sample['target_report']}{tokenizer.eos_token}"
        # Everything before the answer is what model/vlm/engine.py sends for this ECG.
        measured = model.analyze(model.load(shared_data / "ptbxl" / sample["record"]))
        served = processor.apply_chat_template(
            report_messages(report_prompt(measured.measurements, measured.statements)),
            add_generation_prompt=True,
        )
        assert prompt_for(sample, 2, "hybrid") in served
        text = tokenizer.decode(ids[row][batch["attention_mask"][row] == 1])
        assert text.startswith(re.sub(r"<image>", "", served.split("<image>")[0]))
        assert text.split("Assistant:")[0].endswith(
            f"{prompt_for(sample, 2, 'hybrid')}<end_of_utterance>\n"
        )
    assert prompt_for(samples[0], 1, "hybrid") == report_prompt()
    assert REPORT_INSTRUCTION in prompt_for(samples[0], 2, "hybrid")
    # A clean page stands for a rendered waveform (hybrid facts); an augmented one for a
    # received scan, which the engine prompts with the instruction alone.
    train = list(read_samples(work / "dataset", "train"))
    clean = next(s for s in train if s["augmentation"] is None)
    scan = next(s for s in train if s["augmentation"] is not None)
    assert prompt_for(clean, 2, "hybrid").startswith("Measured on the signal")
    assert prompt_for(scan, 2, "hybrid") == report_prompt() == prompt_for(clean, 2, "vlm")


def test_evaluate_prints_a_row_per_adapter(
    work: Path, adapters: dict[int, dict], tmp_path: Path
) -> None:
    config = tmp_path / "evaluate.yaml"
    config.write_text(
        f"dataset_dir: {work / 'dataset'}\nlimit: 2\n"
        f"vlm: {{model: {work / 'tiny'}, mode: hybrid, device: cpu, "
        "max_new_tokens: 12, longest_edge: 512}\n"
    )
    code, printed = _quiet_main(
        [
            "evaluate",
            "--config",
            str(config),
            "--stage1-adapter",
            str(work / "stage1"),
            "--stage2-adapter",
            str(work / "stage2"),
        ]
    )
    assert code == 0
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names == [
        "rule engine (baseline)",
        "copy the prompt (hybrid)",
        "tiny + stage 1 adapter (vlm)",  # read with the prompt stage 1 trains
        "tiny + stage 2 adapter (hybrid)",
    ], printed
    for metric in ("BLEU", "ROUGE-L", "BERTScore F1", "macro F1"):
        assert metric in rows[0]


def test_stage2_adapter_serves_a_dicom_ecg_through_the_gateway_pipeline(
    work: Path, adapters: dict[int, dict], shared_data: Path, tmp_path: Path
) -> None:
    """Six steps on two pages teach no reading: the adapter's text is read if it names a
    statement, else the measurement engine's report goes out, flagged (never the text)."""
    settings = VlmSettings(
        mode="hybrid",
        model=str(work / "tiny"),
        adapter=str(work / "stage2"),
        quantization="4bit",
        device="cpu",
        max_new_tokens=16,
        longest_edge=512,
    )
    gw = gateway_with(tmp_path / "data", EngineChoice("hybrid", settings, "fallback"))
    job_id = gw.receive(shared_data / samples.VENDOR_ECG)
    gw.process_all()
    job = gw.store.get_job(job_id)
    [delivery] = gw.store.list_deliveries()
    report = gw.package(job_id).report
    gw.store.close()
    assert job.state == "done", job.error
    assert report.generated_text is not None  # the adapter ran
    if "engine-fallback" in report.source.quality_flags:
        assert report.engine.name == "measure"
        assert any("tiny+stage2 nf4" in w for w in report.warnings)
    else:
        assert report.engine.name == "hybrid" and "stage2" in report.engine.version
    assert report.measurements.heart_rate_bpm is not None
    assert delivery.job_id == job_id


def test_an_adapter_served_on_another_base_precision_is_flagged(
    work: Path, adapters: dict[int, dict], caplog: pytest.LogCaptureFixture
) -> None:
    from model.vlm.engine import VlmEngine
    from model.vlm.loading import adapter_base_precision

    assert adapter_base_precision(work / "stage2") == "nf4"
    common = {"model": str(work / "tiny"), "adapter": str(work / "stage2"), "device": "cpu"}
    with caplog.at_level("WARNING", logger="model.vlm.loading"):
        merged = VlmEngine(VlmSettings(**common, longest_edge=512))
    assert merged.info.version == "tiny+stage2 (adapter trained on nf4)"
    assert "trained on a nf4 base and is served on a full precision one" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="model.vlm.loading"):
        as_trained = VlmEngine(VlmSettings(**common, quantization="4bit", longest_edge=512))
    assert as_trained.info.version == "tiny+stage2 nf4" and "served on" not in caplog.text


def test_gpu_training_bench_runs_in_its_tiny_cpu_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench/train_gpu.py"), "--tiny", "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^\| ([12]) \| 2 \| ([\d.]+) \| - \|", done.stdout, re.MULTILINE)
    assert [stage for stage, _ in rows] == ["1", "2"], done.stdout
    assert all(float(rate) > 0 for _, rate in rows)
