"""Dataset rows -> model batches, with the serving prompt and only the answer in the loss.

The user turn is built exactly as model/vlm/engine.py builds it at serving time: the same chat
template, `report_prompt` from model/vlm/prompt.py, and the processor resizing the page
to the same `longest_edge`. Stage 1 uses the `vlm`-mode prompt (image and instruction
only) and stage 2 the prompt of the mode the adapter will serve; in `hybrid` mode that
is the measurement engine's measurements and statements, which each dataset row carries in
`rule_report`, for a clean page (a rendered waveform), and the instruction alone for an
augmented one (a scan or photo, served as a received page). Labels are -100 for the prompt (image tokens included) and the padding,
so the model learns only to write the assistant's answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from model.report import Measurements, Statement
from model.vlm.prompt import report_messages, report_prompt

IGNORE_INDEX = -100
Stage = Literal[0, 1, 2]
Mode = Literal["vlm", "hybrid"]


def prompt_for(sample: dict[str, Any], stage: Stage, mode: Mode) -> str:
    """The user turn's text the served engine sends for this page: the instruction alone
    in stages 0 and 1, in vlm mode, and for an augmented page (it stands for a received
    scan or photo, which the engine prompts without facts in hybrid mode too); else the
    hybrid facts and the instruction."""
    if stage in (0, 1) or mode == "vlm" or sample.get("augmentation") is not None:
        return report_prompt()
    rule = sample["rule_report"]
    return report_prompt(
        Measurements.model_validate(rule["measurements"]),
        [Statement.model_validate(s) for s in rule["statements"]],
    )


def target_for(sample: dict[str, Any], stage: Stage) -> str:
    """Stage 0: what the measurement engine read (training/stage0_pages.py); stage 1: the
    short factual description; stage 2: the full structured report."""
    field = {0: "target_reading", 1: "target_alignment", 2: "target_report"}[stage]
    return str(sample[field])


class Collator:
    """Turns dataset rows into input_ids, attention_mask, pixel tensors and labels."""

    def __init__(
        self, processor: Any, dataset_dir: Path, stage: Stage, mode: Mode, longest_edge: int
    ) -> None:
        self.processor = processor
        self.dataset_dir = Path(dataset_dir)
        self.stage = stage
        self.mode = mode
        self.longest_edge = longest_edge
        tokenizer = processor.tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.eos = tokenizer.eos_token
        self.image_token_id = processor.image_token_id

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [self._encode(sample) for sample in samples]
        return _pad(rows, self.pad_id, self.image_token_id)

    def _encode(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One sample: the processed prompt (as model/vlm/engine.py prepares it), then the
        answer."""
        processor = self.processor
        prompt = processor.apply_chat_template(
            report_messages(prompt_for(sample, self.stage, self.mode)), add_generation_prompt=True
        )
        image = _open_image(self.dataset_dir / sample["image"], sample["id"])
        inputs = processor(
            text=[prompt],
            images=[[image]],
            return_tensors="pt",
            size={"longest_edge": self.longest_edge},
        )
        # The generation prompt ends in "Assistant:"; the served model continues " text".
        answer = processor.tokenizer(
            f" {target_for(sample, self.stage)}{self.eos}",
            add_special_tokens=False,
            return_tensors="pt",
        )["input_ids"][0]
        prompt_ids = inputs["input_ids"][0]
        return {
            "input_ids": torch.cat([prompt_ids, answer]),
            "labels": torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), answer]),
            "pixel_values": inputs["pixel_values"][0],
            "pixel_attention_mask": inputs["pixel_attention_mask"][0],
        }


def _open_image(path: Path, sample_id: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as exc:
        raise ValueError(f"sample {sample_id}: cannot read its image {path}: {exc}") from None


def _pad(
    rows: list[dict[str, torch.Tensor]], pad_id: int, image_token_id: int
) -> dict[str, torch.Tensor]:
    """Right padding of the text; images padded with all-zero tiles, which Idefics3 skips."""
    length = max(len(r["input_ids"]) for r in rows)
    tiles = max(r["pixel_values"].shape[0] for r in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    first = rows[0]
    pixels = first["pixel_values"].new_zeros((len(rows), tiles, *first["pixel_values"].shape[1:]))
    pixel_mask = first["pixel_attention_mask"].new_zeros(
        (len(rows), tiles, *first["pixel_attention_mask"].shape[1:])
    )
    for i, row in enumerate(rows):
        n, t = len(row["input_ids"]), row["pixel_values"].shape[0]
        input_ids[i, :n] = row["input_ids"]
        labels[i, :n] = row["labels"]
        attention[i, :n] = 1
        pixels[i, :t] = row["pixel_values"]
        pixel_mask[i, :t] = row["pixel_attention_mask"]
    labels[input_ids == image_token_id] = IGNORE_INDEX
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "pixel_values": pixels,
        "pixel_attention_mask": pixel_mask,
    }
