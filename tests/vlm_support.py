"""The tiny SmolVLM-shaped test model, built once per test session for every test module."""

from __future__ import annotations

import shutil
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


TAUGHT_ANSWER = "Rhythm: sinus rhythm.\nInterpretation: normal ECG."


def taught_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model taught to answer TAUGHT_ANSWER to any page and prompt: a real model
    whose text parses, for the tests of reports the VLM writes itself (the untaught tiny
    model writes nonsense, which must never become an interpretation).

    Only the text model learns, from image features computed once, on one thread (torch's
    threads fight over a busy machine's cores): about 15 s."""
    directory = tmp_path_factory.getbasetemp() / "tiny-smolvlm-taught"
    if (directory / "config.json").exists():
        return directory
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from model.report import Measurements, Statement
    from model.vlm.loading import load_processor
    from model.vlm.prompt import report_messages, report_prompt

    source = tiny_model_dir(tmp_path_factory)
    processor = load_processor(str(source))
    model = AutoModelForImageTextToText.from_pretrained(source)
    usual = Measurements(heart_rate_bpm=70, pr_ms=160, qrs_ms=90, qt_ms=400, qtc_bazett_ms=420)
    fast = Measurements(heart_rate_bpm=97, pr_ms=150, qrs_ms=100, qt_ms=350, qrs_axis_deg=-20)
    prompts = [
        report_prompt(),
        "Read this ECG.",
        report_prompt(usual, [Statement(code="SR", text="Sinus rhythm")]),
        report_prompt(
            fast,
            [
                Statement(code="SR", text="Sinus rhythm"),
                Statement(code="LAD", text="Left axis deviation"),
            ],
        ),
        report_prompt(Measurements(), []),
        "Describe.",
    ]
    answer = processor.tokenizer(
        f" {TAUGHT_ANSWER}{processor.tokenizer.eos_token}",
        add_special_tokens=False,
        return_tensors="pt",
    )["input_ids"][0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        examples = []
        for prompt in prompts:
            text = processor.apply_chat_template(
                report_messages(prompt), add_generation_prompt=True
            )
            inputs = processor(
                text=[text],
                images=[[Image.new("RGB", (660, 510), "white")]],
                return_tensors="pt",
                size={"longest_edge": 512},
            )
            with torch.no_grad():
                image = model.model.get_image_features(
                    inputs["pixel_values"], inputs["pixel_attention_mask"]
                )
            prompt_ids = inputs["input_ids"][0]
            ids = torch.cat([prompt_ids, answer])[None]
            labels = torch.cat([torch.full_like(prompt_ids, -100), answer])[None]
            examples.append((ids, labels, image))
        text_weights = [
            p for n, p in model.named_parameters() if "text_model" in n or "lm_head" in n
        ]
        optimizer = torch.optim.Adam(text_weights, lr=3e-3)
        model.train()
        for _ in range(120):
            for ids, labels, image in examples:
                model(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    mm_encoder_outputs=image,
                    labels=labels,
                ).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    shutil.copytree(source, directory)
    model.save_pretrained(directory)
    return directory
