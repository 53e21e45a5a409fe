"""Two-stage QLoRA fine-tuning of SmolVLM: stage 1 alignment, stage 2 report generation.

Both stages: the base model in 4-bit NF4 with double quantisation (bitsandbytes, also on
the CPU), prepared for k-bit training with gradient checkpointing, and LoRA adapters on
the text model's attention and MLP projections only, so the vision tower and the
connector stay frozen. Paged 8-bit AdamW on CUDA, plain AdamW on the CPU (bitsandbytes'
paged optimizers need CUDA). Stage 2 loads the stage 1 adapter as trainable and goes on.

A plain loop (the transformers/peft example-script style) rather than HF Trainer: the
checkpoint layout (adapter + optimizer + scheduler + step + RNG), the data order that a
resume reproduces exactly, and the per-step loss log the model card reports stay in
view in one short file, with no Trainer argument translation in between.

Output, in `output_dir`: the adapter (adapter_config.json, adapter_model.safetensors),
README.md (model card), metrics.json, and checkpoints/step-N/ for --resume.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tqdm import tqdm

from model.vlm.loading import (
    NF4,
    load_model,
    load_processor,
    model_directory,
    resolve_device,
    resolve_dtype,
)
from model.vlm.settings import (
    DEFAULT_MODEL,
    LoadSpec,
)
from training.collate import Collator, Mode, Stage
from training.dataset import read_samples
from training.loop import LoopSettings

log = logging.getLogger(__name__)

# The text model's projections; the vision tower (also q/k/v ...) and connector excluded.
TEXT_PROJECTIONS = r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
CHECKPOINTS = "checkpoints"
TRAINED_BASE = NF4  # both stages train on the 4-bit base; the card records it for serving
STATE_FILE = "training_state.pt"


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str = TEXT_PROJECTIONS

    @field_validator("target_modules")
    @classmethod
    def _text_model_only(cls, value: str) -> str:
        re.compile(value)
        if "text_model" not in value:
            raise ValueError("target_modules must match only the text model's projections")
        return value


class StageConfig(LoopSettings):
    """config/training/stage1.yaml and stage2.yaml (the loop's settings: LoopSettings)."""

    stage: Stage
    dataset_dir: Path = Path("out/training/dataset")
    model: str = DEFAULT_MODEL
    output_dir: Path
    stage1_adapter: Path | None = Field(None, description="stage 2 starts from this adapter")
    mode: Mode | None = Field(
        None,
        description="stage 2: the serving mode whose prompt it learns (None: hybrid); "
        "stage 1 learns the vlm prompt, so only vlm (or nothing) may be set there",
    )
    limit_samples: int | None = Field(None, ge=1, description="only the first N train samples")
    gradient_checkpointing: bool = True
    lora: LoraSettings | None = Field(
        None,
        description="stage 1: the adapter's shape (None: the defaults); stage 2: None takes "
        "the stage 1 adapter's, and given values must match it (dropout may differ)",
    )

    @model_validator(mode="after")
    def _stage_inputs(self) -> StageConfig:
        if self.stage == 2 and self.stage1_adapter is None:
            raise ValueError("stage 2 needs stage1_adapter (the folder ecg-train stage1 wrote)")
        if self.stage == 1 and self.stage1_adapter is not None:
            raise ValueError("stage1_adapter is for stage 2 only")
        if self.stage == 1 and self.mode == "hybrid":
            raise ValueError("mode: stage 1 trains the vlm prompt only (image and instruction)")
        return self

    @property
    def serving_mode(self) -> Mode:
        """The engine mode whose prompt this stage trains, and so the one to serve it with."""
        return "vlm" if self.stage == 1 else self.mode or "hybrid"


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    val_loss: float | None = None
    samples: int = 0
    resumed_from: int = 0
    seconds: float = 0.0


# -------------------------------------------------------------------- model ----


def load_for_training(config: StageConfig) -> tuple[Any, Any, torch.device]:
    """Processor and the 4-bit base with trainable LoRA adapters on the text model."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    device = resolve_device(config.device)
    dtype = resolve_dtype("auto", device)
    source = model_directory(config.model)
    processor = load_processor(source)
    base = load_model(source, LoadSpec(config.model, None, "4bit", str(device)), device, dtype)
    base = prepare_model_for_kbit_training(
        base,
        use_gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    if config.stage == 2:
        continued = continued_lora(config)
        model = PeftModel.from_pretrained(
            base, str(config.stage1_adapter), is_trainable=True, config=continued
        )
    else:
        lora = config.lora or LoraSettings()
        model = get_peft_model(
            base,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
            ),
        )
    model.config.use_cache = False
    _check_trainable(model)
    return processor, model, device


def continued_lora(config: StageConfig) -> Any:
    """Stage 2's LoraConfig: the stage 1 adapter's (its weights fix r, alpha and the target
    modules), with stage 2's dropout. Stage 2 `lora:` values that differ from the adapter's
    are refused: training on would silently use the adapter's, not the ones configured."""
    from peft import LoraConfig

    adapter = LoraConfig.from_pretrained(str(config.stage1_adapter))
    if config.lora is None:
        return adapter
    trained = {
        "r": adapter.r,
        "alpha": adapter.lora_alpha,
        "target_modules": adapter.target_modules,
    }
    wanted = {"r": config.lora.r, "alpha": config.lora.alpha}
    wanted["target_modules"] = config.lora.target_modules
    differ = [key for key, value in wanted.items() if trained[key] != value]
    if differ:
        found = ", ".join(f"{key} {trained[key]!r} (configured {wanted[key]!r})" for key in differ)
        raise ValueError(
            f"lora: stage 2 continues the stage 1 adapter {config.stage1_adapter}, whose "
            f"weights fix {found}; remove lora from the stage 2 config to take the adapter's, "
            "or train stage 1 with these values"
        )
    adapter.lora_dropout = config.lora.dropout
    return adapter


def _check_trainable(model: Any) -> None:
    """Only LoRA weights of the text model train: vision tower and connector are frozen."""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    wrong = [n for n in trainable if "lora_" not in n or "text_model" not in n]
    if not trainable or wrong:
        raise ValueError(f"unexpected trainable parameters: {wrong[:5] or 'none'}")


def make_optimizer(model: Any, config: StageConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if device.type == "cuda":
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(
            params, lr=config.learning_rate, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)


# --------------------------------------------------------------------- data ----


def training_samples(config: StageConfig) -> list[dict[str, Any]]:
    """Stage 1: each record's copy 0; stage 2: every train sample, balancing copies too."""
    samples = list(read_samples(config.dataset_dir, "train", originals_only=config.stage == 1))
    if config.limit_samples is not None:
        samples = samples[: config.limit_samples]
    if not samples:
        raise ValueError(f"{config.dataset_dir}/train.jsonl has no training samples")
    return samples


def total_steps(config: StageConfig, n_samples: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    per_step = config.batch_size * config.gradient_accumulation
    return max(1, math.ceil(config.epochs * n_samples / per_step))


def batch_indices(n_samples: int, step: int, micro: int, config: StageConfig) -> list[int]:
    """The samples of micro-batch `micro` of optimizer step `step`: a pure function of the
    seed, so a resumed run reads exactly the batches the interrupted one would have."""
    start = (step * config.gradient_accumulation + micro) * config.batch_size
    indices = []
    for position in range(start, start + config.batch_size):
        epoch, offset = divmod(position, n_samples)
        order = np.random.default_rng([config.seed, epoch]).permutation(n_samples)
        indices.append(int(order[offset]))
    return indices


# --------------------------------------------------------------- checkpoints ----


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((output_dir / CHECKPOINTS).glob("step-*"), key=lambda p: int(p.name[5:]))
    return found[-1] if found else None


def save_checkpoint(
    output_dir: Path,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    step: int,
    losses: list[float],
    keep: int,
) -> Path:
    directory = output_dir / CHECKPOINTS / f"step-{step}"
    model.save_pretrained(directory)
    torch.save(
        {
            "step": step,
            "losses": losses,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
        },
        directory / STATE_FILE,
    )
    for old in sorted((output_dir / CHECKPOINTS).glob("step-*"), key=lambda p: int(p.name[5:]))[
        :-keep
    ]:
        shutil.rmtree(old)
    return directory


def load_checkpoint(
    directory: Path, model: Any, optimizer: Any, scheduler: Any
) -> tuple[int, list[float]]:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(directory / "adapter_model.safetensors"))
    return restore_training_state(directory, optimizer, scheduler)


def restore_training_state(
    directory: Path, optimizer: Any, scheduler: Any
) -> tuple[int, list[float]]:
    """Optimizer, schedule and RNG as save_checkpoint left them; (step, losses)."""
    state = torch.load(directory / STATE_FILE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"]), list(state["losses"])


# --------------------------------------------------------------------- loop ----


def train_stage(config: StageConfig, resume: bool = False) -> TrainResult:
    """Run one stage to the end, checkpointing; saves the adapter and its model card."""
    from transformers import get_scheduler

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    samples = training_samples(config)
    steps = total_steps(config, len(samples))
    processor, model, device = load_for_training(config)
    collate = Collator(
        processor, config.dataset_dir, config.stage, config.serving_mode, config.longest_edge
    )
    optimizer = make_optimizer(model, config, device)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, config.warmup_steps, steps)
    output_dir = config.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    start, losses = 0, []
    checkpoint = latest_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        raise ValueError(f"--resume: no checkpoint under {output_dir / CHECKPOINTS}")
    if checkpoint is not None:
        start, losses = load_checkpoint(checkpoint, model, optimizer, scheduler)
        log.info("resumed from %s", checkpoint)
    started = time.monotonic()
    loop = TrainingLoop(model, optimizer, scheduler, collate, samples, config, device, output_dir)
    loop.run(start, steps, losses, model, f"stage {config.stage}")
    result = TrainResult(
        output_dir,
        steps,
        losses,
        samples=len(samples),
        resumed_from=start,
        seconds=time.monotonic() - started,
    )
    result.val_loss = validation_loss(model, collate, config, device)
    model.save_pretrained(output_dir)
    write_model_card(config, result, model.peft_config["default"])
    return result


@dataclass
class TrainingLoop:
    """The optimizer steps of a run, whatever trains (stage 0: the vision tower and
    connector; stages 1 and 2: the LoRA adapters), so every stage checkpoints, resumes
    and reports its losses the same way."""

    model: Any
    optimizer: Any
    scheduler: Any
    collate: Collator
    samples: list[dict[str, Any]]
    config: LoopSettings
    device: torch.device
    output_dir: Path  # its checkpoints/

    def run(
        self,
        start: int,
        steps: int,
        losses: list[float],
        saved: Any,
        desc: str,
        deadline: float | None = None,
    ) -> None:
        """Steps `start` to `steps`, each loss appended to `losses`; a checkpoint of `saved`
        (what save_pretrained writes) every save_steps, after the last step, and after the
        step that passes `deadline` (time.monotonic()), where the run stops early."""
        config = self.config
        self.model.train()
        bar = tqdm(
            range(start, steps),
            initial=start,
            total=steps,
            desc=desc,
            unit="step",
            dynamic_ncols=True,
        )
        for step in bar:
            loss = self.step(step)
            losses.append(loss)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
            out_of_time = deadline is not None and time.monotonic() > deadline
            if (step + 1) % config.save_steps == 0 or step + 1 == steps or out_of_time:
                save_checkpoint(
                    self.output_dir,
                    saved,
                    self.optimizer,
                    self.scheduler,
                    step + 1,
                    losses,
                    config.keep_checkpoints,
                )
            if out_of_time:
                break
        bar.close()

    def step(self, step: int) -> float:
        """One optimizer step over `gradient_accumulation` micro-batches; the mean loss."""
        config, samples = self.config, self.samples
        total = 0.0
        for micro in range(config.gradient_accumulation):
            indices = batch_indices(len(samples), step, micro, config)
            batch = self.collate([samples[i] for i in indices])
            loss = _forward(self.model, batch, self.device) / config.gradient_accumulation
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], config.max_grad_norm
        )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total


def _forward(model: Any, batch: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    batch = {key: value.to(device) for key, value in batch.items()}
    dtype = next(p for p in model.parameters() if p.requires_grad).dtype
    batch["pixel_values"] = batch["pixel_values"].to(dtype)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with autocast:
        return model(**batch).loss


def validation_loss(
    model: Any, collate: Collator, config: StageConfig, device: torch.device
) -> float | None:
    """Mean loss on the first `eval_samples` val samples, None when there are none."""
    if config.eval_samples == 0:
        return None
    samples = list(read_samples(config.dataset_dir, "val"))[: config.eval_samples]
    if not samples:
        return None
    model.eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(samples), config.batch_size):
            batch = collate(samples[start : start + config.batch_size])
            losses.append(float(_forward(model, batch, device)))
    model.train()
    return float(np.mean(losses))


# --------------------------------------------------------------- model card ----


def write_model_card(config: StageConfig, result: TrainResult, lora: Any) -> None:
    """README.md and metrics.json next to the adapter: base, data, stage, settings, metrics.

    `lora` is the LoraConfig the model trained with (stage 2: the stage 1 adapter's), so
    the card prints what was trained, not what a config asked for."""
    train = _dataset_train_split(config.dataset_dir)
    metrics = _training_metrics(config, result, lora)
    (config.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    card = _model_card(config, result, lora, metrics, train)
    (config.output_dir / "README.md").write_text(card, encoding="utf-8")


def _training_metrics(config: StageConfig, result: TrainResult, lora: Any) -> dict[str, Any]:
    """metrics.json: what trained, on how much, and its losses (for comparing runs)."""
    return {
        "stage": config.stage,
        "serving_mode": config.serving_mode,
        "base_precision": TRAINED_BASE,
        "lora": {"r": lora.r, "alpha": lora.lora_alpha, "dropout": lora.lora_dropout},
        "steps": result.steps,
        "train_samples": result.samples,
        "first_train_loss": result.losses[0] if result.losses else None,
        "final_train_loss": result.losses[-1] if result.losses else None,
        "val_loss": result.val_loss,
        "train_losses": result.losses,
    }


def _dataset_train_split(dataset_dir: Path) -> dict[str, Any]:
    """The dataset manifest's train split (records, samples); empty without a manifest."""
    manifest_path = dataset_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return manifest.get("splits", {}).get("train", {})


def _stage_purpose(config: StageConfig) -> str:
    """What the stage teaches, in the card's first sentence."""
    if config.stage == 1:
        return "alignment: page -> short description (rhythm, rate, intervals, axis)"
    return (
        f"report generation: class-balanced pages -> structured report, "
        f"continued from {config.stage1_adapter} (whose LoRA shape it keeps)"
    )


def _model_card(
    config: StageConfig,
    result: TrainResult,
    lora: Any,
    metrics: dict[str, Any],
    train: dict[str, Any],
) -> str:
    """README.md: how to serve the adapter (its prompt and base precision), its data and
    metrics; `train` is the dataset manifest's train split."""
    purpose = _stage_purpose(config)
    settings = json.dumps(json.loads(config.model_dump_json()), indent=2)
    val = "not computed" if result.val_loss is None else f"{result.val_loss:.4f}"
    return f"""---
base_model: {config.model}
base_precision: {TRAINED_BASE}
library_name: peft
tags: [ecg, smolvlm, qlora, lora]
---
# ECG Gateway SmolVLM adapter, stage {config.stage}

Stage {config.stage}, {purpose}. QLoRA: trained on the 4-bit NF4 base (double
quantisation; vision tower, connector and output head kept in the compute dtype), LoRA
r={lora.r} alpha={lora.lora_alpha} dropout={lora.lora_dropout} on the text model's attention
and MLP projections (vision tower and connector frozen).

Serve it with the prompt it was trained on and the base precision it was trained on:
`vlm: {{model: {config.model}, adapter: <this folder>, mode: {config.serving_mode}, quantization: 4bit}}`.
With `quantization: none` the adapter is merged into full-precision weights and its
outputs differ from training's; the engine then logs a warning and its reports' engine
label says so.

## Data
- dataset: `{config.dataset_dir}` ({train.get("records", "?")} train records,
  {train.get("samples", "?")} train samples in the dataset); samples used:
  {result.samples} ({"copy 0 of each record" if config.stage == 1 else "all, with balancing copies"})
- pages resized to longest_edge {config.longest_edge}, as the serving engine does

## Metrics
| metric | value |
|---|---:|
| optimizer steps | {result.steps} |
| first train loss | {metrics["first_train_loss"]:.4f} |
| final train loss | {metrics["final_train_loss"]:.4f} |
| val loss | {val} |

## Hyperparameters
```json
{settings}
```
"""
