"""The tiny SmolVLM-shaped test model, built once per test session for every test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.vlm.tiny_checkpoint import build_tiny_model


def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ecg-gateway model tiny` output, shared by all modules under the session's temp root."""
    directory = tmp_path_factory.getbasetemp() / "tiny-smolvlm"
    if not (directory / "config.json").exists():
        build_tiny_model(directory)
    return directory


def make_lora_adapter(base_dir: Path, out_dir: Path) -> Path:
    """A LoRA adapter on the language model's projections, as training/ writes one.

    init_lora_weights=False gives random non-zero B matrices, so the adapter visibly
    changes what the model generates (a fresh LoRA adapter would be an exact no-op).
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(base_dir)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        init_lora_weights=False,
    )
    get_peft_model(base, config).save_pretrained(out_dir)
    return out_dir
