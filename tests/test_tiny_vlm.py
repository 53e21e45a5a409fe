"""`ecg-gateway model tiny DIR`: a checkpoint with SmolVLM-500M-Instruct's architecture,
special tokens, chat template and image geometry, at tiny widths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from gateway.cli import main
from model.vlm.tiny_checkpoint import SMOLVLM_500M, SPECIAL_TOKENS, build_model, build_processor

LETTER_PAGE = (1100, 850)  # the renderer's page at 100 dpi


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "tiny"
    assert main(["model", "tiny", str(directory)]) == 0
    return directory


def test_checkpoint_has_the_smolvlm_layout(built: Path):
    config = json.loads((built / "config.json").read_text())
    assert config["architectures"] == ["Idefics3ForConditionalGeneration"]
    assert config["model_type"] == "idefics3" and config["scale_factor"] == 4
    vision = config["vision_config"]
    assert (vision["image_size"], vision["patch_size"]) == (512, 16)
    processor = json.loads((built / "processor_config.json").read_text())
    assert processor["processor_class"] == "Idefics3Processor"
    assert processor["image_seq_len"] == 64
    image = processor["image_processor"]
    assert image["image_processor_type"] == "Idefics3ImageProcessor"
    assert image["size"] == {"longest_edge": 2048}
    assert image["max_image_size"] == {"longest_edge": 512}
    assert (built / "model.safetensors").stat().st_size < 5_000_000


def test_tokenizer_has_smolvlm_special_tokens_and_chat_template(built: Path):
    processor = AutoProcessor.from_pretrained(built, backend="pil")
    tokenizer = processor.tokenizer
    ids = [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS]
    assert tokenizer.unk_token_id not in ids[1:] and len(set(ids)) == len(SPECIAL_TOKENS)
    assert tokenizer.eos_token == "<end_of_utterance>" and tokenizer.pad_token == "<|im_end|>"
    tile, image = tokenizer.convert_tokens_to_ids(["<row_2_col_3>", "<image>"])
    assert tokenizer("<row_2_col_3><image>", add_special_tokens=False).input_ids == [tile, image]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt == "<|im_start|>User:<image>Hi<end_of_utterance>\nAssistant:"
    text = "Sinus rhythm, heart rate 72 bpm."
    assert tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True) == text


@pytest.mark.parametrize(
    ("longest_edge", "tiles", "image_tokens"),
    [
        (512, 0, 64),
        (1024, 4, 320),
        (1536, 9, 640),
        (2048, 16, 1088),
    ],
)
def test_image_tokens_per_page_match_smolvlm(built: Path, longest_edge, tiles, image_tokens):
    processor = AutoProcessor.from_pretrained(built, backend="pil")
    page = Image.new("RGB", LETTER_PAGE, "white")
    inputs = processor(
        text=["<image>"], images=[[page]], size={"longest_edge": longest_edge}, return_tensors="pt"
    )
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == image_tokens
    assert inputs["pixel_values"].shape[1:] == (tiles + 1, 3, 512, 512)


def test_loads_through_the_auto_classes(built: Path):
    model = AutoModelForImageTextToText.from_pretrained(built)
    assert type(model).__name__ == "Idefics3ForConditionalGeneration"
    assert model.generation_config.eos_token_id == model.config.text_config.eos_token_id


def test_real_dimensions_build_a_500m_parameter_model():
    """The GPU benchmark's model: SmolVLM-500M's widths and depths (weights never saved)."""
    import torch

    with torch.device("meta"):
        model = build_model(build_processor(), SMOLVLM_500M)
    parameters = sum(p.numel() for p in model.parameters())
    assert 480e6 < parameters < 520e6
    assert model.config.text_config.num_key_value_heads == 5
    assert model.config.vision_config.hidden_size == 768
