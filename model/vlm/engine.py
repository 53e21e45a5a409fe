"""The VLM engine: SmolVLM reads the rendered 12-lead page and writes the report.

The gateway's engine protocol (model.engine.Engine): `name`, `interpret(ecg) -> Report`
and `interpret_batch` over waveforms and pages without a waveform (Secondary Capture,
PDF), so a GPU generates many reports in one pass; plus `interpret_image` for one page.

Modes: `vlm` gives the model the image and the instruction only; `hybrid` also gives it
the measured values and the measurement engine's statements (model/vlm/prompt.py). In both,
waveform inputs are measured by the measurement engine and the measured values fill the
report's structured fields; the text's statements become the report's statements and
its numbers are only checked against the measurements (model/vlm/parse.py).

Image resolution. Idefics3's processor resizes the page so its longest edge is
`longest_edge`, then stretches it up to whole 512 px tiles (64 tokens each) plus one
512 px global view. The tile grid, not the pixel count, sets the cost, so only
multiples of 512 are worth configuring. For the renderer's US-letter landscape page
(aspect 1.29; bench/vlm.py prints the table):

| longest_edge | tiles + global | image tokens | px per mm of paper | 1 mm grid (0.04 s, 0.1 mV) |
|---:|---:|---:|---:|---|
| 512  | 0 + 1  | 64   | 1.8 | gone; QRS visible, P waves a pixel or two high |
| 1024 | 4 + 1  | 320  | 3.7 | faint; P, QRS, T and the 5 mm grid readable |
| 1536 | 9 + 1  | 640  | 5.5 | every grid line; P waves, notches, 1 mm ST shifts clear |
| 2048 | 16 + 1 | 1088 | 7.3 | as at 1536, a little sharper, at 1.7x the tokens |

The default, 1536, is the smallest size at which a 1 mm square spans about five pixels,
so a 40 ms interval difference or a 0.1 mV ST shift moves a trace by several pixels;
at 1024 it is three to four pixels and the small grid fades into the traces (judged on
downscaled renders of PTB-XL pages). 2048 adds 70 % more image tokens (prefill time)
without showing more of the tracing. Training must use the same value.
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import BatchFeature

import model as ecg_model
from model.ecg import Ecg
from model.engine import Held
from model.render import PAGE_WIDTH_MM
from model.report import EngineInfo, Report
from model.statement_limits import DEFAULT_LIMITS, StatementLimits
from model.vlm.loading import load_vlm
from model.vlm.page_image import PageImage, is_page_file, load_page
from model.vlm.parse import parse_generated_text
from model.vlm.prompt import report_messages, report_prompt
from model.vlm.report import Generation, page_report, unreadable_reason, waveform_report
from model.vlm.settings import VlmSettings

__all__ = ["MIN_RENDER_DPI", "VlmEngine", "render_page"]

log = logging.getLogger(__name__)

# Pages are rendered with at least `longest_edge` pixels across, so the processor only
# ever scales down (Lanczos); never below 100 dpi, where thin traces start to alias.
MIN_RENDER_DPI = 100


@dataclass(frozen=True)
class _Request:
    image: Image.Image
    prompt: str
    measured: Report | None  # the measurement engine's report of a waveform; None for a page
    page: PageImage | None


class VlmEngine:
    """Loads the model once at construction; raises VlmUnavailable if it cannot.

    `limits` are the site's statement limits for the measurement report that grounds the
    model (hybrid) and whose measurements every waveform report keeps. `on_unreadable`:
    what becomes of an item whose text names no known ECG statement: "fallback" (the
    measurement engine's report, flagged; model/vlm/report.py) or "hold" (Held, so the
    job waits as for an unavailable engine); the gateway passes `engine_unavailable`."""

    def __init__(
        self,
        settings: VlmSettings | None = None,
        limits: StatementLimits = DEFAULT_LIMITS,
        on_unreadable: str = "fallback",
    ) -> None:
        if on_unreadable not in ("fallback", "hold"):
            raise ValueError(f"on_unreadable must be 'fallback' or 'hold', not {on_unreadable!r}")
        self.settings = settings or VlmSettings()
        self.limits = limits
        self.on_unreadable = on_unreadable
        self.name = self.settings.mode
        self.reads_pages = True
        self.loaded = load_vlm(self.settings.load_spec())
        self.info = EngineInfo(name=self.name, version=self.loaded.label)
        log.info(
            "VLM engine %s ready: %s on %s (%s)",
            self.name,
            self.loaded.label,
            self.loaded.device,
            str(self.loaded.dtype).removeprefix("torch."),
        )

    def interpret(self, ecg: Ecg) -> Report | Held:
        return self.interpret_batch([ecg])[0]

    def interpret_image(
        self, image: Image.Image | PageImage, kind: str = "secondary-capture"
    ) -> Report | Held:
        page = (
            image
            if isinstance(image, PageImage)
            else PageImage(image.convert("RGB"), kind, "image")
        )
        return self.interpret_batch([page])[0]

    def interpret_file(self, path: str | Path) -> Report | Held:
        """A waveform file (measured, rendered) or a page file (PDF, image, DICOM SC)."""
        if is_page_file(path):
            return self.interpret_image(load_page(path))
        return self.interpret(ecg_model.load(path))

    def interpret_batch(self, items: Sequence[Ecg | PageImage]) -> list[Report | Held]:
        """Reports in input order (Held for unreadable text where jobs are held);
        generation runs `batch_size` items at a time."""
        requests = [self._request(item) for item in items]
        generations = self.generate([r.image for r in requests], [r.prompt for r in requests])
        return [self._report(r, g) for r, g in zip(requests, generations, strict=True)]

    def generate(
        self, images: Sequence[Image.Image], prompts: Sequence[str], min_new_tokens: int = 0
    ) -> list[Generation]:
        """Greedy answers to (image, prompt) pairs; min_new_tokens is for benchmarks."""
        results: list[Generation] = []
        size = self.settings.batch_size
        for start in range(0, len(images), size):
            results += self._generate_batch(
                images[start : start + size], prompts[start : start + size], min_new_tokens
            )
        return results

    def image_tokens(self, image: Image.Image) -> int:
        """How many image tokens this page costs at the configured longest edge."""
        return int(
            self.prepare([image], [report_prompt()])["input_ids"]
            .eq(self.loaded.processor.image_token_id)
            .sum()
        )

    def render(self, ecg: Ecg) -> Image.Image:
        return render_page(ecg, self.settings.longest_edge)

    # --- generation --------------------------------------------------------------------

    def prepare(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> BatchFeature:
        """The model's inputs on its device: chat template, image tiles, left padding."""
        processor = self.loaded.processor
        texts = [
            processor.apply_chat_template(report_messages(p), add_generation_prompt=True)
            for p in prompts
        ]
        inputs = processor(
            text=texts,
            images=[[image] for image in images],
            return_tensors="pt",
            padding=True,
            size={"longest_edge": self.settings.longest_edge},
        )
        inputs = inputs.to(self.loaded.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.loaded.dtype)
        return inputs

    def _generate_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], min_new_tokens: int
    ) -> list[Generation]:
        inputs = self.prepare(images, prompts)
        tokenizer = self.loaded.processor.tokenizer
        started = time.monotonic()
        with torch.inference_mode():
            output = self.loaded.model.generate(
                **inputs,
                do_sample=False,
                num_beams=1,
                max_new_tokens=self.settings.max_new_tokens,
                min_new_tokens=min(min_new_tokens, self.settings.max_new_tokens),
                max_time=self.settings.timeout_s,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        seconds = time.monotonic() - started
        prompt_length = inputs["input_ids"].shape[1]
        timed_out = seconds >= self.settings.timeout_s
        return [
            self._generation(row, seconds, timed_out, int(mask.sum()))
            for row, mask in zip(output[:, prompt_length:], inputs["attention_mask"], strict=True)
        ]

    def _generation(
        self, new_ids: torch.Tensor, seconds: float, timed_out: bool, prompt_tokens: int
    ) -> Generation:
        tokenizer = self.loaded.processor.tokenizer
        ends = (new_ids == tokenizer.eos_token_id).nonzero()
        finished = len(ends) > 0
        length = int(ends[0, 0]) + 1 if finished else len(new_ids)
        text = tokenizer.decode(new_ids[:length], skip_special_tokens=True)
        return Generation(
            _clean(text), length, finished, timed_out and not finished, seconds, prompt_tokens
        )

    # --- requests and reports ----------------------------------------------------------

    def _request(self, item: Ecg | PageImage) -> _Request:
        if isinstance(item, PageImage):
            return _Request(item.image, report_prompt(), None, item)
        measured = ecg_model.analyze(item, self.limits)
        if self.settings.mode == "hybrid":
            prompt = report_prompt(measured.measurements, measured.statements)
        else:
            prompt = report_prompt()
        return _Request(self.render(item), prompt, measured, None)

    def _report(self, request: _Request, generation: Generation) -> Report | Held:
        if self.on_unreadable == "hold" and not parse_generated_text(generation.text).readable:
            return Held(unreadable_reason(self.info, generation))
        if request.measured is not None:
            return waveform_report(
                request.measured, generation, self.info, hybrid=self.settings.mode == "hybrid"
            )
        return page_report(request.page, generation, self.info)


def render_page(ecg: Ecg, longest_edge: int) -> Image.Image:
    """The page the model reads: the standard rendering without the patient header."""
    dpi = max(MIN_RENDER_DPI, math.ceil(longest_edge / (PAGE_WIDTH_MM / 25.4)))
    png = ecg_model.render_png(ecg, dpi=dpi, header=False)
    return Image.open(io.BytesIO(png)).convert("RGB")


def _clean(text: str) -> str:
    """Drop a repeated role prefix and surrounding blanks from the decoded answer."""
    return re.sub(r"^\s*Assistant:\s*", "", text).strip()
