"""SmolVLM-500M report generation speed on one GPU: bf16 and 4-bit NF4, batch 1, 8 and 32.

The model is built with random weights and SmolVLM-500M-Instruct's exact dimensions
(model/vlm/tiny_checkpoint.py SMOLVLM_500M: SigLIP base/16 at 512 px, 12 layers of 768;
SmolLM2-360M text model, 32 layers of 960, 15 heads, 5 KV heads, vocabulary 49280; scale
factor 4), saved, and loaded through the gateway's own engine (model/vlm/engine.py), so
the timed path is the served one. Speed does not depend on the weights' values; every report is forced to
the same number of new tokens (min = max), about the length of a trained report.

The page is a rendered synthetic 12-lead ECG at the engine's default resolution, with
the hybrid prompt (measurements and rule statements: the longer prompt). A report's
time includes preprocessing the page (resize and 512 px tiles) and generation.

Goals on one H200: <= 1 s per report at batch 1, >= 30 reports/s at batch 32.
Self-checks (exit 1 if one fails): forced token counts reached, image tokens as
expected, 4-bit layers present and smaller, no timeout, CUDA used.

    python bench/vlm_gpu.py [--out DIR]     # on the GPU machine, a few minutes
    python bench/vlm_gpu.py --dry-run       # tiny dims on the CPU: proves the script runs
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np
import torch
from transformers import AutoProcessor
from transformers.utils import is_torchvision_available

import model
from model.vlm.engine import VlmEngine, render_page
from model.vlm.prompt import report_messages, report_prompt
from model.vlm.settings import DEFAULT_LONGEST_EDGE, VlmSettings
from model.vlm.tiny_checkpoint import SMOLVLM_500M, TINY, VlmDims, build_model, build_processor

GOAL_BATCH1_S = 1.0
GOAL_BATCH32_PER_S = 30.0
# Image tokens of the renderer's US-letter page: (tiles + global view) x 64.
EXPECTED_IMAGE_TOKENS = {512: 64, 1024: 320, 1536: 640, 2048: 1088}


@dataclass(frozen=True)
class Run:
    precision: str
    batch: int
    seconds_per_batch: float
    generate_seconds: float
    prompt_tokens: int
    new_tokens: int
    peak_gib: float | None

    @property
    def seconds_per_report(self) -> float:
        return self.seconds_per_batch / self.batch

    @property
    def reports_per_s(self) -> float:
        return self.batch / self.seconds_per_batch


class Checks:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        print(f"  check {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failed.append(what)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny model on the CPU")
    parser.add_argument("--batches", default=None, help="comma list (default 1,8,32)")
    parser.add_argument("--new-tokens", type=int, default=None, help="per report (default 96)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per batch (3)")
    parser.add_argument("--longest-edge", type=int, default=DEFAULT_LONGEST_EDGE)
    parser.add_argument("--out", type=Path, help="also write the table to DIR/vlm_gpu.md")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("error: no CUDA GPU visible to torch; use --dry-run on a CPU", file=sys.stderr)
        return 2
    device = "cpu" if dry else "cuda"
    batches = [int(b) for b in (args.batches or ("1,2" if dry else "1,8,32")).split(",")]
    new_tokens = args.new_tokens or (8 if dry else 96)
    repeats = args.repeats or (1 if dry else 3)
    dims = TINY if dry else SMOLVLM_500M
    precisions = ("float32", "4bit") if dry else ("bfloat16", "4bit")
    checks = Checks()
    print(environment(device), flush=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="vlm-gpu-") as tmp:
        started = time.perf_counter()
        checkpoint = write_random_checkpoint(Path(tmp) / "smolvlm", dims, device)
        print(f"random checkpoint written in {time.perf_counter() - started:.0f} s", flush=True)
        page, prompt = synthetic_page_and_prompt(args.longest_edge)
        for precision in precisions:
            settings = VlmSettings(
                model=str(checkpoint),
                mode="hybrid",
                device=device,
                dtype="bfloat16" if precision == "bfloat16" else "float32" if dry else "auto",
                quantization="4bit" if precision == "4bit" else "none",
                max_new_tokens=new_tokens,
                timeout_s=600,
                batch_size=max(batches),
                longest_edge=args.longest_edge,
            )
            runs += time_precision(settings, precision, page, prompt, batches, repeats, checks)
        preprocessing = preprocessing_table(
            checkpoint, page, prompt, max(batches), device, args.longest_edge
        )
    check_memory(runs, checks, device)
    text = table(runs, dims, device, new_tokens, args.longest_edge, repeats, dry)
    text += "\n\n" + preprocessing
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "vlm_gpu.md").write_text(text + "\n")
    if checks.failed:
        print(f"{len(checks.failed)} check(s) failed: {checks.failed}", file=sys.stderr)
        return 1
    return 0


def environment(device: str) -> str:
    versions = {
        name: importlib.metadata.version(name)
        for name in ("torch", "transformers", "bitsandbytes", "peft")
    }
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (dry run)"
    return (
        f"GPU {gpu}; {os.cpu_count()} CPU cores; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; torchvision {'yes (GPU preprocessing)' if is_torchvision_available() else 'no'}"
    )


def write_random_checkpoint(directory: Path, dims: VlmDims, device: str) -> Path:
    """SmolVLM-shaped random weights, saved in bf16 (float32 on the CPU) like the real repo."""
    processor = build_processor()
    with torch.device(device):
        network = build_model(processor, dims)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    network.to(dtype).save_pretrained(directory)
    processor.save_pretrained(directory)
    del network
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return directory


def synthetic_page_and_prompt(longest_edge: int):
    """A rendered 12-lead page of a synthetic sinus rhythm, and its hybrid prompt."""
    ecg = synthetic_ecg()
    measured = model.analyze(ecg)
    return render_page(ecg, longest_edge), report_prompt(measured.measurements, measured.statements)


def synthetic_ecg() -> model.Ecg:
    """10 s at 500 Hz, 75 bpm: Gaussian P, QRS and T waves scaled per lead."""
    fs, seconds = 500.0, 10.0
    t = np.arange(int(fs * seconds)) / fs
    beat = np.zeros_like(t)
    for onset in np.arange(0.3, seconds, 0.8):
        for offset, width, height in ((0.0, 0.025, 0.15), (0.16, 0.012, 1.0), (0.45, 0.05, 0.3)):
            beat += height * np.exp(-0.5 * ((t - onset - offset) / width) ** 2)
    gains = np.array([0.8, 1.0, 0.3, -0.9, 0.3, 0.6, -0.5, 0.2, 0.6, 1.1, 1.0, 0.8])
    return model.Ecg(
        signal=gains[:, None] * beat[None, :], sampling_rate=fs, lead_names=model.STANDARD_LEADS
    )


def time_precision(
    settings: VlmSettings,
    precision: str,
    page,
    prompt: str,
    batches: list[int],
    repeats: int,
    checks: Checks,
) -> list[Run]:
    print(f"{precision}: loading", flush=True)
    engine = VlmEngine(settings)
    check_engine(engine, precision, page, settings, checks)
    runs = []
    for batch in batches:
        images, prompts = [page] * batch, [prompt] * batch
        engine.generate(images, prompts, min_new_tokens=settings.max_new_tokens)  # warm-up
        reset_peak(settings.device)
        wall, generate = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            generations = engine.generate(images, prompts, min_new_tokens=settings.max_new_tokens)
            wall.append(time.perf_counter() - started)
            generate.append(generations[0].batch_seconds)
            checks.expect(
                all(
                    g.new_tokens == settings.max_new_tokens and not g.timed_out for g in generations
                ),
                f"{precision} batch {batch}: {batch} reports of {settings.max_new_tokens} tokens",
            )
        run = Run(
            precision,
            batch,
            float(np.median(wall)),
            float(np.median(generate)),
            generations[0].prompt_tokens,
            settings.max_new_tokens,
            peak_gib(settings.device),
        )
        print(
            f"  batch {batch}: {run.seconds_per_batch:.3f} s per batch, "
            f"{run.reports_per_s:.1f} reports/s",
            flush=True,
        )
        runs.append(run)
    del engine
    gc.collect()
    if settings.device == "cuda":
        torch.cuda.empty_cache()
    return runs


def preprocessing_table(
    checkpoint: Path, page, prompt: str, batch: int, device: str, longest_edge: int
) -> str:
    """Seconds to turn `batch` pages into model inputs, per image-processor backend.

    The engine preprocesses on the CPU (torchvision's backend when installed, else
    Pillow's); the torchvision backend can also run on the GPU (device=cuda). A backend
    that fails is reported, not fatal: this table only guides where to optimise.
    """
    wheres = [("pil", "cpu")]
    if is_torchvision_available():
        wheres += [("torchvision", "cpu")] + ([("torchvision", device)] if device != "cpu" else [])
    lines = [
        f"Preprocessing {batch} pages (longest edge {longest_edge}), median of 3:",
        "",
        "| image processor | device | s per batch | pages/s |",
        "|---|---|---:|---:|",
    ]
    for backend, where in wheres:
        try:
            seconds = time_preprocessing(
                checkpoint, backend, where, page, prompt, batch, longest_edge
            )
            lines.append(f"| {backend} | {where} | {seconds:.3f} | {batch / seconds:.1f} |")
        except Exception as exc:  # noqa: BLE001 - an informative row, whatever went wrong
            lines.append(
                f"| {backend} | {where} | failed: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:120]} | |"
            )
    return "\n".join(lines)


def time_preprocessing(
    checkpoint: Path, backend: str, where: str, page, prompt: str, batch: int, longest_edge: int
) -> float:
    processor = AutoProcessor.from_pretrained(checkpoint, backend=backend)
    text = processor.apply_chat_template(report_messages(prompt), add_generation_prompt=True)
    kwargs = {"device": where} if backend == "torchvision" else {}
    times = []
    for _ in range(4):  # the first is a warm-up
        started = time.perf_counter()
        inputs = processor(
            text=[text] * batch,
            images=[[page]] * batch,
            return_tensors="pt",
            padding=True,
            size={"longest_edge": longest_edge},
            **kwargs,
        )
        inputs["pixel_values"].sum().item()  # waits for the GPU
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]))


def check_engine(
    engine: VlmEngine, precision: str, page, settings: VlmSettings, checks: Checks
) -> None:
    expected = EXPECTED_IMAGE_TOKENS.get(settings.longest_edge)
    tokens = engine.image_tokens(page)
    checks.expect(
        expected is None or tokens == expected,
        f"{precision}: {tokens} image tokens at longest edge {settings.longest_edge}",
    )
    parameter = next(engine.loaded.model.parameters())
    checks.expect(
        parameter.device.type == settings.device, f"{precision}: weights on {parameter.device}"
    )
    if precision == "4bit":
        import bitsandbytes as bnb

        quantized = sum(isinstance(m, bnb.nn.Linear4bit) for m in engine.loaded.model.modules())
        least = 8 if settings.device == "cpu" else 100  # tiny model: 2+2 layers
        checks.expect(quantized > least, f"4bit: {quantized} Linear4bit layers")


def check_memory(runs: list[Run], checks: Checks, device: str) -> None:
    if device != "cuda":
        return
    peak = {r.precision: r.peak_gib for r in runs if r.batch == 1}
    checks.expect(
        peak.get("4bit", 0) < peak.get("bfloat16", 0),
        f"4-bit uses less GPU memory at batch 1 ({peak})",
    )


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def table(
    runs: list[Run],
    dims: VlmDims,
    device: str,
    new_tokens: int,
    longest_edge: int,
    repeats: int,
    dry: bool,
) -> str:
    name = "tiny dims (DRY RUN, CPU)" if dry else "SmolVLM-500M dims (random weights)"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    title = (
        f"VLM report generation, {name}, {gpu}, {date.today().isoformat()}: hybrid prompt, "
        f"longest edge {longest_edge}, {new_tokens} new tokens per report, median of {repeats}"
    )
    lines = [
        title,
        "",
        (
            "| precision | batch | prompt tokens | s per batch | of which generate | s per report "
            "| reports/s | new tokens/s | peak GiB | goal |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.precision} | {r.batch} | {r.prompt_tokens} | {r.seconds_per_batch:.3f} "
            f"| {r.generate_seconds:.3f} | {r.seconds_per_report:.3f} | {r.reports_per_s:.1f} "
            f"| {r.batch * r.new_tokens / r.generate_seconds:.0f} "
            f"| {'' if r.peak_gib is None else f'{r.peak_gib:.1f}'} | {goal(r)} |"
        )
    return "\n".join(lines)


def goal(run: Run) -> str:
    if run.batch == 1:
        met = run.seconds_per_report <= GOAL_BATCH1_S
        return f"<= {GOAL_BATCH1_S:g} s: {'met' if met else 'NOT met'}"
    if run.batch == 32:
        met = run.reports_per_s >= GOAL_BATCH32_PER_S
        return f">= {GOAL_BATCH32_PER_S:g}/s: {'met' if met else 'NOT met'}"
    return ""


if __name__ == "__main__":
    sys.exit(main())
