"""`ecg-gateway model`: tools for the VLM engine's model files."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="VLM model tools")
    actions = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    tiny = actions.add_parser("tiny", help="build a random-weight SmolVLM-shaped test model in DIR")
    tiny.add_argument("dir", type=Path)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.vlm.tiny_checkpoint import build_tiny_model

    print(
        f"wrote a random-weight test model (not for clinical use) to {build_tiny_model(args.dir)}"
    )
    return 0
