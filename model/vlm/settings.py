"""The VLM engine's settings, apart from the engine so that reading gateway.yaml does not
import torch and transformers (ten seconds) for a gateway that runs the measurement engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from model.settings import StrictSettings

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-500M-Instruct"
DEFAULT_LONGEST_EDGE = 1536  # model/vlm/engine.py explains the resolution / token trade-off
TILE_PX = 512


class VlmUnavailable(RuntimeError):
    """The configured model, adapter or device cannot be used; the message says why."""


@dataclass(frozen=True)
class LoadSpec:
    """Where the weights are and how to run them (a subset of VlmSettings)."""

    model: str = DEFAULT_MODEL
    adapter: str | None = None
    quantization: str = "none"  # "none" | "4bit"
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    dtype: str = "auto"  # "auto" | "float32" | "bfloat16" | "float16"


class VlmSettings(StrictSettings):
    """The engine's configuration; gateway.yaml nests it as-is."""

    mode: Literal["vlm", "hybrid"] = "vlm"
    model: str = Field(DEFAULT_MODEL, description="hub id or local directory")
    adapter: str | None = Field(None, description="PEFT LoRA adapter directory")
    quantization: Literal["none", "4bit"] = "none"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_new_tokens: int = Field(256, ge=1, le=4096)
    timeout_s: float = Field(120.0, gt=0, description="per generation batch")
    batch_size: int = Field(8, ge=1, le=512)
    longest_edge: int = Field(DEFAULT_LONGEST_EDGE, ge=TILE_PX, le=4096)

    @field_validator("longest_edge")
    @classmethod
    def _whole_tiles(cls, value: int) -> int:
        return whole_tiles(value)

    def load_spec(self) -> LoadSpec:
        return LoadSpec(self.model, self.adapter, self.quantization, self.device, self.dtype)


def whole_tiles(longest_edge: int) -> int:
    """`longest_edge` if it is a multiple of TILE_PX, else ValueError saying why it must be
    (serving and training validate their page size with this, so both use the same)."""
    if longest_edge % TILE_PX:
        raise ValueError(
            f"longest_edge must be a multiple of {TILE_PX} (the processor rounds the page "
            f"up to whole {TILE_PX} px tiles, so {longest_edge} costs as much as "
            f"{-(-longest_edge // TILE_PX) * TILE_PX})"
        )
    return longest_edge
