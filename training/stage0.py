"""Stage 0, vision pretraining: the vision tower and connector learn to read ECG pages.

SmolVLM's own vision tower was pretrained on photos and documents; the model that
`ecg-gateway model assemble` builds here has a random one. Either way the two QLoRA
stages train only the text model, so before them this stage trains the vision tower
and the connector, in full precision, with the text model frozen: the loss is the
text model's on the measurement engine's reading of the page (training/stage0_pages.py),
so the image features move towards what the frozen text model needs to write rate,
intervals, axis, rhythm and conduction. The output is a complete model directory
(save_pretrained, processor included) that stage 1 takes as its base model
(`ecg-train stage1 --model <output_dir>`).

Resumable like the QLoRA stages (`--resume`: same batches, optimizer, schedule and RNG;
checkpoints hold only the trained weights), and `max_minutes` ends a run cleanly at a
checkpoint, so a CPU run can be spread over sessions.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field
from safetensors.torch import load_file, save_file

from model.vlm.loading import load_model, load_processor, model_directory, resolve_device
from model.vlm.settings import LoadSpec
from training.augment import AugmentConfig
from training.collate import Collator
from training.loop import LoopSettings

# The QLoRA stages' loop pieces: the optimizer steps, the forward pass and the val loss are
# the same whatever is trainable.
from training.qlora import (
    CHECKPOINTS,
    TrainingLoop,
    latest_checkpoint,
    make_optimizer,
    restore_training_state,
    total_steps,
    validation_loss,
)
from training.stage0_pages import build_pages, read_pages

log = logging.getLogger(__name__)

TRAINED_FILE = "trained.safetensors"
# What stage 0 trains: Idefics3's vision tower and its pixel-shuffle connector.
TRAINED_PARTS = ("model.vision_model.", "model.connector.")


class Stage0Config(LoopSettings):
    """config/training/stage0.yaml (CPU recipe) and stage0-gpu.yaml (GPU recipe); the loop's
    settings are LoopSettings, with its defaults (the yaml files set stage 0's own)."""

    model: str = Field("HuggingFaceTB/SmolVLM-256M-Instruct", description="hub id or folder")
    output_dir: Path = Path("out/training/stage0")
    dataset_dir: Path = Field(Path("out/training/stage0-pages"), description="the pages")
    ptbxl_dir: Path = Path("../shared/data/ptbxl")
    train_folds: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])
    limit_records: int | None = Field(None, ge=1, description="only the first N PTB-XL records")
    generated: int = Field(600, ge=0, description="deepfake-ecg ECGs")
    real_copies: int = Field(1, ge=0, description="augmented copies per real training record")
    dpi: int = Field(100, ge=50, le=600)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    max_minutes: float | None = Field(None, gt=0, description="stop at a checkpoint after this")


class Stage0Result(BaseModel):
    output_dir: Path
    steps_done: int
    steps_planned: int
    samples: int
    resumed_from: int
    seconds: float
    losses: list[float]
    val_loss: float | None


def load_for_stage0(config: Stage0Config) -> tuple[Any, Any, torch.device]:
    """Processor and the float32 model (bf16 autocast on a GPU keeps float32 master
    weights) with only vision tower and connector trainable."""
    device = resolve_device(config.device)
    dtype = torch.float32
    source = model_directory(config.model)
    processor = load_processor(source)
    network = load_model(source, LoadSpec(config.model, None, "none", str(device)), device, dtype)
    network.requires_grad_(False)
    for name, parameter in network.named_parameters():
        parameter.requires_grad = name.startswith(TRAINED_PARTS)
    network.config.use_cache = False
    return processor, network, device


def trained_state(network: Any) -> dict[str, torch.Tensor]:
    return {
        name: p.detach().contiguous()
        for name, p in network.named_parameters()
        if name.startswith(TRAINED_PARTS)
    }


class TrainedParts:
    """What a stage 0 checkpoint keeps of the model: the trained weights only, written when
    training/qlora.py's save_checkpoint calls save_pretrained (the whole model is 0.5 GB)."""

    def __init__(self, network: Any) -> None:
        self.network = network

    def save_pretrained(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file(trained_state(self.network), directory / TRAINED_FILE)


def load_checkpoint(
    directory: Path, network: Any, optimizer: Any, scheduler: Any
) -> tuple[int, list[float]]:
    network.load_state_dict(load_file(directory / TRAINED_FILE), strict=False)
    return restore_training_state(directory, optimizer, scheduler)


def _resumed(
    config: Stage0Config, network: Any, optimizer: Any, scheduler: Any
) -> tuple[int, list[float]]:
    """Weights, optimizer, schedule and RNG of the latest checkpoint; (step, losses)."""
    checkpoint = latest_checkpoint(config.output_dir)
    if checkpoint is None:
        raise ValueError(f"--resume: no checkpoint under {config.output_dir / CHECKPOINTS}")
    log.info("resuming from %s", checkpoint)
    return load_checkpoint(checkpoint, network, optimizer, scheduler)


def train_stage0(config: Stage0Config, resume: bool = False) -> Stage0Result:
    """Build the pages (once), then train on them (train_on_pages)."""
    manifest = build_pages(
        config.dataset_dir,
        config.ptbxl_dir,
        config.train_folds,
        config.generated,
        config.real_copies,
        config.dpi,
        config.augment,
        config.seed,
        config.limit_records,
    )
    return train_on_pages(config, manifest, resume)


def train_on_pages(
    config: Stage0Config, manifest: dict[str, Any], resume: bool = False
) -> Stage0Result:
    """Train on config.dataset_dir, checkpointing; write the model directory and its card."""
    from transformers import get_scheduler

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    samples = _training_pages(config)
    steps = total_steps(config, len(samples))
    processor, network, device = load_for_stage0(config)
    collate = Collator(processor, config.dataset_dir, 0, "vlm", config.longest_edge)
    optimizer = make_optimizer(network, config, device)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, config.warmup_steps, steps)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    start, losses = _resumed(config, network, optimizer, scheduler) if resume else (0, [])
    started = time.monotonic()
    deadline = None if config.max_minutes is None else started + 60 * config.max_minutes
    loop = TrainingLoop(
        network, optimizer, scheduler, collate, samples, config, device, config.output_dir
    )
    loop.run(start, steps, losses, TrainedParts(network), "stage 0", deadline)
    result = Stage0Result(
        output_dir=config.output_dir,
        steps_done=len(losses),
        steps_planned=steps,
        samples=len(samples),
        resumed_from=start,
        seconds=time.monotonic() - started,
        losses=losses,
        val_loss=validation_loss(network, collate, config, device),
    )
    _save_model(config, network, processor)
    write_model_card(config, result, manifest)
    return result


def _training_pages(config: Stage0Config) -> list[dict[str, Any]]:
    """The train split's pages; an empty split is an error that names the file."""
    samples = read_pages(config.dataset_dir, "train")
    if not samples:
        raise ValueError(f"{config.dataset_dir}/train.jsonl has no pages")
    return samples


def _save_model(config: Stage0Config, network: Any, processor: Any) -> None:
    """The complete model directory (processor included) that stage 1 takes as its base."""
    network.config.use_cache = True
    network.save_pretrained(config.output_dir)
    processor.save_pretrained(config.output_dir)


def write_model_card(config: Stage0Config, result: Stage0Result, manifest: dict[str, Any]) -> None:
    metrics = json.loads(result.model_dump_json())
    (config.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    val = "not computed" if result.val_loss is None else f"{result.val_loss:.4f}"
    finished = (
        "finished"
        if result.steps_done == result.steps_planned
        else "stopped early (resume with --resume)"
    )
    first = f"{result.losses[0]:.4f}" if result.losses else "-"
    last = f"{result.losses[-1]:.4f}" if result.losses else "-"
    settings = json.dumps(json.loads(config.model_dump_json()), indent=2)
    card = f"""---
base_model: {config.model}
tags: [ecg, smolvlm, idefics3, vision-pretraining]
---
# ECG Gateway SmolVLM, stage 0 (vision pretraining), not for clinical use

{config.model} with its vision tower and connector trained on ECG pages (text model
frozen): {manifest["samples"]["train"]} training pages (PTB-XL folds {config.train_folds}
and deepfake-ecg generated ECGs), targets from the measurement engine. Continue with
`ecg-train stage1 --model {config.output_dir}`.

| metric | value |
|---|---:|
| optimizer steps | {result.steps_done} of {result.steps_planned} ({finished}) |
| pages per step | {config.batch_size * config.gradient_accumulation} |
| first / last train loss | {first} / {last} |
| val loss (fold 9, clean pages) | {val} |

```json
{settings}
```
"""
    (config.output_dir / "README.md").write_text(card, encoding="utf-8")
