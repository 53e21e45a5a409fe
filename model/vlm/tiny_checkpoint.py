"""A SmolVLM-shaped checkpoint built offline: the tests' and benchmarks' stand-in for the
real SmolVLM-500M-Instruct, which cannot be downloaded on machines without the hub.

The checkpoint has the real architecture (Idefics3ForConditionalGeneration: a SigLIP
vision tower, the pixel-shuffle connector, a Llama text model) and the real image
geometry (512 px tiles, 16 px patches, scale factor 4, so 64 tokens per tile), with
only the widths and depths shrunk. Its processor is an Idefics3Processor with an
Idefics3 image processor and a byte-level BPE tokenizer trained here with `tokenizers`
that has SmolVLM's special tokens and chat template. It is saved with save_pretrained,
so it loads through exactly the code path of the real model (model.vlm.loading).
The weights are random: it generates nonsense, quickly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    LlamaConfig,
    PreTrainedTokenizerFast,
)
from transformers.models.idefics3 import Idefics3ImageProcessorPil

from model.scp_statements import STATEMENTS
from model.vlm.prompt import REPORT_INSTRUCTION
from model.vlm.settings import TILE_PX

# SmolVLM-500M-Instruct's chat template (its chat_template.json), verbatim.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
BOS, EOS, PAD, UNK = "<|im_start|>", "<end_of_utterance>", "<|im_end|>", "<|endoftext|>"
IMAGE_TOKENS = ("<fake_token_around_image>", "<image>", "<global-img>")
# Idefics3 numbers the tiles of an image up to 6 x 6.
TILE_TOKENS = tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))
SPECIAL_TOKENS = (UNK, BOS, PAD, *IMAGE_TOKENS, EOS, *TILE_TOKENS)
TOKENIZER_VOCAB = 2000
# SmolVLM-500M-Instruct's preprocessor_config.json: resize so the longest edge is 2048,
# cut into 512 px tiles, Lanczos (PIL resample 1), mean and std 0.5.
SMOLVLM_LONGEST_EDGE = 2048


@dataclass(frozen=True)
class TowerDims:
    """One transformer stack: width, depth, attention heads and MLP width; key/value heads
    for grouped-query attention (the text model), None where every head has its own."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    kv_heads: int | None = None


@dataclass(frozen=True)
class VlmDims:
    """Widths and depths of an Idefics3 model's two towers; the image geometry is SmolVLM's."""

    vision: TowerDims
    text: TowerDims
    vocab_size: int | None = None  # None: the tokenizer's size
    image_size: int = TILE_PX
    patch_size: int = 16
    scale_factor: int = 4


# bitsandbytes' 4-bit CPU kernels need layer input widths in multiples of 64, so the
# vision tower is 64 wide (32 fails inside bitsandbytes with a bare shape error).
TINY = VlmDims(vision=TowerDims(64, 2, 2, 128), text=TowerDims(64, 2, 4, 128, kv_heads=2))
# HuggingFaceTB/SmolVLM-500M-Instruct: SigLIP base/16 at 512 px, SmolLM2-360M text model.
SMOLVLM_500M = VlmDims(
    vision=TowerDims(768, 12, 12, 3072),
    text=TowerDims(960, 32, 15, 2560, kv_heads=5),
    vocab_size=49280,
)


def build_tiny_model(directory: Path, dims: VlmDims = TINY, seed: int = 0) -> Path:
    """Write a random-weight checkpoint and its processor to `directory`; returns it."""
    directory = Path(directory)
    processor = build_processor()
    model = build_model(processor, dims, seed)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_processor(
    longest_edge: int = SMOLVLM_LONGEST_EDGE,
    tokenizer: PreTrainedTokenizerFast | None = None,
    seq_len: int | None = None,
) -> Idefics3Processor:
    """SmolVLM's processor; the tokenizer trained here unless one is given."""
    # The PIL backend needs no torchvision; it saves itself as "Idefics3ImageProcessor",
    # like the real checkpoint, so either backend loads it.
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=True,
        size={"longest_edge": longest_edge},
        max_image_size={"longest_edge": TILE_PX},
        resample=1,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer or build_tokenizer(),
        image_seq_len=seq_len or image_seq_len(TINY),
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def image_seq_len(dims: VlmDims) -> int:
    """Tokens per tile after the connector's pixel shuffle: (512/16)^2 / 4^2 = 64."""
    return (dims.image_size // dims.patch_size) ** 2 // dims.scale_factor**2


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE (SmolLM2's kind) trained on report vocabulary in about a second."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_text(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=[*IMAGE_TOKENS, EOS],
        model_max_length=8192,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def _training_text() -> Iterator[str]:
    yield REPORT_INSTRUCTION
    for statement in STATEMENTS.values():
        yield f"{statement.code}: {statement.description}."
    for name, unit in (("heart rate", "bpm"), ("PR", "ms"), ("QRS", "ms"), ("QT", "ms")):
        yield " ".join(f"{name} {value} {unit};" for value in range(40, 500, 7))
    yield "Rhythm: Conduction: Axis: Hypertrophy: ST-T: Infarction: Interpretation: Measurements:"
    yield "possible probable normal abnormal ECG axis deviation not measurable degrees"


def idefics3_config(
    dims: VlmDims, text_config: dict, image_token_id: int, pad_token_id: int, **extra: object
) -> Idefics3Config:
    """SmolVLM's Idefics3 configuration: SigLIP vision tower of `dims`, the given text model."""
    return Idefics3Config(
        vision_config={
            "hidden_size": dims.vision.hidden,
            "intermediate_size": dims.vision.intermediate,
            "num_hidden_layers": dims.vision.layers,
            "num_attention_heads": dims.vision.heads,
            "image_size": dims.image_size,
            "patch_size": dims.patch_size,
        },
        text_config=text_config,
        scale_factor=dims.scale_factor,
        image_token_id=image_token_id,
        pad_token_id=pad_token_id,
        **extra,
    )


def build_model(
    processor: Idefics3Processor, dims: VlmDims, seed: int = 0
) -> Idefics3ForConditionalGeneration:
    tokenizer = processor.tokenizer
    token_id = tokenizer.convert_tokens_to_ids
    text_config = LlamaConfig(
        vocab_size=dims.vocab_size or len(tokenizer),
        hidden_size=dims.text.hidden,
        intermediate_size=dims.text.intermediate,
        num_hidden_layers=dims.text.layers,
        num_attention_heads=dims.text.heads,
        num_key_value_heads=dims.text.kv_heads,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        bos_token_id=token_id(BOS),
        eos_token_id=token_id(EOS),
        pad_token_id=token_id(PAD),
    )
    config = idefics3_config(dims, text_config.to_dict(), token_id("<image>"), token_id(PAD))
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.bos_token_id = token_id(BOS)
    model.generation_config.eos_token_id = token_id(EOS)
    model.generation_config.pad_token_id = token_id(PAD)
    return model
