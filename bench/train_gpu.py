"""Training speed and memory on one GPU: stage 0 (vision pretraining), then QLoRA stage 1
and stage 2, a few hundred steps each: the GPU recipe, ready for when a GPU is at hand.

The model is built with random weights and SmolVLM-500M-Instruct's exact dimensions
(model/vlm/tiny_checkpoint.py SMOLVLM_500M), saved, and trained through training/qlora.py as
`ecg-train stage1/stage2` would: 4-bit NF4 base with double quantisation, LoRA on the
text model's projections, paged 8-bit AdamW, bf16 compute, gradient checkpointing.
Speed does not depend on the weights' values. The pages are rendered synthetic 12-lead
ECGs at the serving resolution (longest_edge 1536: 9 tiles + global view, 640 image
tokens) with the serving prompts (stage 2: hybrid, with the measurements) and report
targets of the real length, written as a dataset folder like `ecg-train dataset`'s.

Stage 0 (training/stage0.py) trains the vision tower and connector in float32 with bf16
autocast, text model frozen, on pages with stage 0's reading targets; stage 1 then loads
stage 0's output folder as its base, as `ecg-train stage1 --model out/training/stage0` does.
The full-data GPU recipe is config/training/stage0-gpu.yaml.

Self-checks (exit 1 if one fails): every step of every stage gave a finite loss, and
on the GPU the peak memory was recorded. Stage 2 starts from stage 1's adapter.

    python bench/train_gpu.py [--steps 200] [--out DIR]    # on the GPU machine
    python bench/train_gpu.py --tiny --steps 2             # tiny dims on the CPU: proves it runs
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch

import model
from model.vlm.engine import render_page
from model.vlm.prompt import measurement_phrases
from model.vlm.settings import DEFAULT_LONGEST_EDGE
from model.vlm.tiny_checkpoint import SMOLVLM_500M, TINY, VlmDims, build_model, build_processor
from training.loop import LoopSettings
from training.qlora import StageConfig, TrainResult, train_stage
from training.stage0 import Stage0Config, Stage0Result, train_on_pages
from training.stage0_pages import reading_target

sys.path.insert(0, str(REPO / "bench"))
from vlm_gpu import peak_gib, reset_peak, synthetic_ecg

# bitsandbytes' CPU 4-bit kernels quantise blocks of 64 input features.
PAGES = 8
REPORT = (
    "Rhythm: sinus rhythm.\nConduction: left anterior fascicular block.\n"
    "Axis: left axis deviation.\nST-T: non-specific ST changes.\n"
    "Interpretation: abnormal ECG."
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny dims on the CPU")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per stage")
    parser.add_argument("--batch", type=int, default=4, help="pages per step")
    parser.add_argument("--longest-edge", type=int, default=DEFAULT_LONGEST_EDGE)
    parser.add_argument("--out", type=Path, help="also write the table to DIR/train_gpu.md")
    args = parser.parse_args()
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU; use --tiny for the CPU dry run", file=sys.stderr)
        return 1
    dims = TINY if args.tiny else SMOLVLM_500M
    longest_edge = 512 if args.tiny else args.longest_edge
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_checkpoint(root / "base", dims, device)
        write_dataset(root / "dataset", longest_edge)
        loop = LoopSettings(
            longest_edge=longest_edge,
            device=device,
            max_steps=args.steps,
            batch_size=args.batch,
            gradient_accumulation=1,
            save_steps=args.steps,
            eval_samples=0,
            warmup_steps=min(10, args.steps // 10),
        ).model_dump()
        reset_peak(device)
        stage0 = train_on_pages(
            Stage0Config(
                model=str(root / "base"),
                output_dir=root / "stage0",
                dataset_dir=root / "dataset",
                **loop,
            ),
            {"samples": {"train": PAGES}},
        )
        results = {0: (as_train_result(stage0), peak_gib(device))}
        for stage in (1, 2):
            config = StageConfig(
                stage=stage,
                dataset_dir=root / "dataset",
                model=str(root / "stage0"),
                output_dir=root / f"stage{stage}",
                **loop,
                stage1_adapter=root / "stage1" if stage == 2 else None,
            )
            reset_peak(device)
            result = train_stage(config)
            results[stage] = (result, peak_gib(device))
    failures = checks(results, device, args.steps)
    text = table(results, dims, device, args.batch, longest_edge, args.tiny)
    print(text)
    for failure in failures:
        print(f"CHECK FAILED: {failure}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "train_gpu.md").write_text(text + "\n")
    return 1 if failures else 0


def as_train_result(result: Stage0Result) -> TrainResult:
    return TrainResult(
        result.output_dir, result.steps_done, result.losses, samples=result.samples,
        seconds=result.seconds,
    )  # fmt: skip


def write_checkpoint(directory: Path, dims: VlmDims, device: str) -> None:
    """Random weights saved in bf16 on the GPU (as the real repo ships), float32 on the CPU."""
    processor = build_processor()
    network = build_model(processor, dims)
    network.to(torch.bfloat16 if device == "cuda" else torch.float32).save_pretrained(directory)
    processor.save_pretrained(directory)


def write_dataset(directory: Path, longest_edge: int) -> None:
    """PAGES train rows in the layout of training/dataset.py, from one synthetic ECG."""
    ecg = synthetic_ecg()
    measured = model.analyze(ecg)
    (directory / "images").mkdir(parents=True)
    render_page(ecg, longest_edge).save(directory / "images" / "page.png")
    phrases = measurement_phrases(measured.measurements)
    rule_report = measured.model_dump(mode="json", exclude={"created_at"})
    reading = reading_target(measured, {"SR": "rhythm", "LAFB": "conduction"})
    rows = [
        {
            "id": f"{n:05d}-0",
            "copy": 0,
            "split": "train",
            "image": "images/page.png",
            "target_alignment": f"Rhythm: sinus rhythm. {'; '.join(phrases[:5])}. "
            f"Axis: {phrases[6]}.",
            "target_report": f"{REPORT}\nMeasurements: {'; '.join(phrases)}.",
            "target_reading": reading,
            "rule_report": rule_report,
        }
        for n in range(PAGES)
    ]
    (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "val.jsonl").write_text("")


def checks(
    results: dict[int, tuple[TrainResult, float | None]], device: str, steps: int
) -> list[str]:
    failures = []
    for stage, (result, _) in results.items():
        if len(result.losses) != steps or not all(math.isfinite(x) for x in result.losses):
            failures.append(f"stage {stage}: {len(result.losses)} finite losses of {steps}")
    if device == "cuda" and any(peak is None for _, peak in results.values()):
        failures.append("no CUDA memory recorded")
    return failures


def table(
    results: dict[int, tuple[TrainResult, float | None]],
    dims: VlmDims,
    device: str,
    batch: int,
    longest_edge: int,
    tiny: bool,
) -> str:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("torch", "transformers", "peft", "bitsandbytes")
    )
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU dry run)"
    name = "tiny dims (DRY RUN, CPU)" if tiny else "SmolVLM-500M dims (random weights)"
    optimizer = "paged AdamW 8-bit, bf16" if device == "cuda" else "AdamW, float32"
    lines = [
        f"Stage 0 + QLoRA training, {name}; GPU {gpu}; {versions}",
        (
            "stage 0: vision tower + connector in float32 (bf16 autocast on the GPU), AdamW; "
            f"stages 1-2: NF4 + double quant base, LoRA r16 on text q/k/v/o/gate/up/down, {optimizer}, "
            f"gradient checkpointing; batch {batch}, longest_edge {longest_edge}, "
            f"text width {dims.text.hidden} x {dims.text.layers} layers"
        ),
        "",
        "| stage | steps | samples/s | peak GPU memory GiB | first loss | last loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for stage, (result, peak) in results.items():
        rate = result.steps * batch / result.seconds
        memory = "-" if peak is None else f"{peak:.2f}"
        lines.append(
            f"| {stage} | {result.steps} | {rate:.2f} | {memory} | "
            f"{result.losses[0]:.3f} | {result.losses[-1]:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
