"""The training loop's settings, shared by every stage's config (stage 0 and the QLoRA
stages), so training/qlora.py's loop pieces read the same fields whatever trains."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model.vlm.settings import DEFAULT_LONGEST_EDGE, TILE_PX, whole_tiles


class LoopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    longest_edge: int = Field(DEFAULT_LONGEST_EDGE, ge=TILE_PX, le=4096)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="overrides epochs")
    batch_size: int = Field(4, ge=1)
    gradient_accumulation: int = Field(4, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "cosine"
    max_grad_norm: float = Field(1.0, gt=0)
    save_steps: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_samples: int = Field(32, ge=0, description="val split samples for the val loss; 0: none")
    seed: int = 0

    @field_validator("longest_edge")
    @classmethod
    def _whole_tiles(cls, value: int) -> int:
        return whole_tiles(value)
