"""The `ecg-train` command. It parses arguments and calls the stages; it holds no logic.

Each subcommand is a pair: `_add_<name>(subparsers)` registers it and `_cmd_<name>(args)`
runs it and returns the exit code: 0 ok, 1 the work failed, 2 bad input or configuration.
Every subcommand reads its YAML under config/training/ (`--config` to use another).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from model.errors import EcgDecodeError
from model.vlm.settings import VlmUnavailable
from training.config import ModelT, TrainingConfigError, load_yaml_config

if TYPE_CHECKING:
    from training.dataset import DatasetConfig

CONFIG_DIR = Path("config/training")


def _subcommand(
    sub: argparse._SubParsersAction, name: str, help: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Register `name`, run by `run`, with the option every subcommand has: `--config`, its
    YAML under config/training/."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--config", type=Path, default=CONFIG_DIR / f"{name}.yaml")
    p.set_defaults(func=run)
    return p


def _load_config(
    args: argparse.Namespace, schema: type[ModelT], options: tuple[str, ...], **renamed: str
) -> ModelT:
    """The `--config` YAML as `schema`, with the command's options laid over it: each of
    `options` overrides the config field of its own name, each `renamed` entry (field=option)
    the field it names; an option left out (None) keeps the YAML's value."""
    overrides = {name: getattr(args, name) for name in options}
    overrides |= {field: getattr(args, option) for field, option in renamed.items()}
    return load_yaml_config(args.config, schema, **overrides)


def _add_dataset(sub: argparse._SubParsersAction) -> None:
    what = "render PTB-XL into image/report pairs for training"
    p = _subcommand(sub, "dataset", what, _cmd_dataset)
    p.add_argument("--ptbxl", type=Path, help="PTB-XL directory (overrides ptbxl_dir)")
    p.add_argument("--out", type=Path, help="output folder (overrides output_dir)")
    p.add_argument("--limit", type=int, help="only the first N records by ecg_id")
    p.add_argument("--dpi", type=int, help="page resolution (overrides dpi)")
    p.add_argument("--workers", type=int, help="rendering processes")
    p.add_argument("--seed", type=int, help="augmentation and balancing seed")
    p.add_argument(
        "--from-overreads",
        metavar="SOURCE",
        help="export the gateway's confirmed over-reads instead: its gateway.yaml, store"
        " file or postgresql:// URL (default --out: OUTPUT_DIR-overreads)",
    )


def _cmd_dataset(args: argparse.Namespace) -> int:
    from training.balance import counts_table
    from training.dataset import DatasetConfig, build_dataset, plan_dataset

    options = ("limit", "dpi", "workers", "seed")
    config = _load_config(args, DatasetConfig, options, ptbxl_dir="ptbxl", output_dir="out")
    if args.from_overreads:
        return _export_overreads(args, config)
    plan = plan_dataset(config)
    print(
        f"class counts of the train split, before and after oversampling "
        f"(target: ratio {config.balance.ratio} x largest class):"
    )
    print(counts_table(plan.balance_before, plan.balance_after, plan.balance_target))
    manifest = build_dataset(config, plan)
    for split, counts in manifest["splits"].items():
        print(f"{split}: {counts['records']} records, {counts['samples']} samples")
    print(f"wrote {config.output_dir}/{{train,val,test}}.jsonl and manifest.json")
    return 0


def _export_overreads(args: argparse.Namespace, config: DatasetConfig) -> int:
    from gateway.config import ConfigError
    from gateway.store import StoreError
    from training.overreads import export_overreads, open_source

    out = args.out or config.output_dir.with_name(f"{config.output_dir.name}-overreads")
    try:
        store = open_source(args.from_overreads)
    except (ValueError, ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = export_overreads(store, config, out)
    finally:
        store.close()
    for what, count in manifest["counts"].items():
        print(f"{what}: {count}")
    print(f"wrote {out}/{{train,val,test}}.jsonl and manifest.json")
    return 0


def _add_stage0(sub: argparse._SubParsersAction) -> None:
    what = "vision pretraining: vision tower and connector read rendered ECG pages"
    p = _subcommand(sub, "stage0", what, _cmd_stage0)
    p.add_argument("--model", help="base model: hub id or folder (overrides model)")
    p.add_argument("--out", type=Path, help="model folder to write (overrides output_dir)")
    p.add_argument("--pages", type=Path, help="page folder (overrides dataset_dir)")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    p.add_argument("--max-minutes", type=float, help="stop at a checkpoint after N minutes")
    p.add_argument("--device", help="auto, cpu or cuda[:N]")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")


def _cmd_stage0(args: argparse.Namespace) -> int:
    from training.stage0 import Stage0Config, train_stage0

    options = ("model", "max_steps", "max_minutes", "device")
    config = _load_config(args, Stage0Config, options, output_dir="out", dataset_dir="pages")
    result = train_stage0(config, resume=args.resume)
    val = "not computed" if result.val_loss is None else f"{result.val_loss:.4f}"
    losses = f"{result.losses[0]:.4f} -> {result.losses[-1]:.4f}" if result.losses else "none"
    print(
        f"stage 0: {result.steps_done} of {result.steps_planned} steps on {result.samples} pages "
        f"(from step {result.resumed_from}) in {result.seconds / 60:.1f} min, train loss "
        f"{losses}, val loss {val}"
    )
    print(f"wrote the model and its model card to {result.output_dir}")
    return 0


def _add_stage(sub: argparse._SubParsersAction, stage: int) -> None:
    what = (
        "alignment: page -> short factual description"
        if stage == 1
        else "report generation from the stage 1 adapter"
    )
    p = _subcommand(sub, f"stage{stage}", f"QLoRA stage {stage}, {what}", _cmd_stage)
    p.add_argument("--dataset", type=Path, help="dataset folder (overrides dataset_dir)")
    p.add_argument("--model", help="base model: hub id or folder (overrides model)")
    p.add_argument("--out", type=Path, help="adapter folder (overrides output_dir)")
    p.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    p.add_argument("--device", help="auto, cpu or cuda[:N]")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    if stage == 2:
        p.add_argument("--stage1-adapter", type=Path, help="stage 1 adapter folder")
    else:
        p.set_defaults(stage1_adapter=None)


def _add_stage1(sub: argparse._SubParsersAction) -> None:
    _add_stage(sub, 1)


def _add_stage2(sub: argparse._SubParsersAction) -> None:
    _add_stage(sub, 2)


def _cmd_stage(args: argparse.Namespace) -> int:
    from training.qlora import StageConfig, train_stage

    options = ("model", "max_steps", "device", "stage1_adapter")
    config = _load_config(args, StageConfig, options, dataset_dir="dataset", output_dir="out")
    result = train_stage(config, resume=args.resume)
    val = "not computed" if result.val_loss is None else f"{result.val_loss:.4f}"
    print(
        f"stage {config.stage}: {result.steps} steps on {result.samples} samples "
        f"(from step {result.resumed_from}), train loss {result.losses[0]:.4f} -> "
        f"{result.losses[-1]:.4f}, val loss {val}"
    )
    print(f"wrote the adapter and its model card to {result.output_dir}")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    what = "BLEU, ROUGE-L, BERTScore and code F1 on the test split"
    p = _subcommand(sub, "evaluate", what, _cmd_evaluate)
    p.add_argument("--dataset", type=Path, help="dataset folder (overrides dataset_dir)")
    p.add_argument("--limit", type=int, help="only the first N samples of the split")
    p.add_argument("--output", type=Path, help="write OUTPUT.md and OUTPUT.json too")
    p.add_argument("--stage1-adapter", type=Path, help="add the row of this stage 1 adapter")
    p.add_argument("--stage2-adapter", type=Path, help="add the row of this stage 2 adapter")
    p.add_argument("--model", help="base model of the adapters: hub id or folder (vlm.model)")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import EvaluateConfig, evaluate, write_outputs

    options = ("limit", "output", "stage1_adapter", "stage2_adapter")
    config = _load_config(args, EvaluateConfig, options, dataset_dir="dataset")
    if args.model:
        config.vlm = config.vlm.model_copy(update={"model": args.model})
    result = evaluate(config)
    print(f"BERTScore encoder: {result.encoder}")
    print(result.table)
    if config.output is not None:
        write_outputs(result, config.output)
        print(f"wrote {config.output.with_suffix('.md')} and {config.output.with_suffix('.json')}")
    return 0


def _add_evaluate_reading(sub: argparse._SubParsersAction) -> None:
    what = "page reading on PTB-XL's held-out fold: heart rate MAE, rhythm/conduction F1, text"
    p = _subcommand(sub, "evaluate-reading", what, _cmd_evaluate_reading)
    p.add_argument("--limit", type=int, help="only the first N PTB-XL records")
    p.add_argument("--output", type=Path, help="write OUTPUT.md and OUTPUT.json too")
    p.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="add the row of a model folder (repeatable)",
    )


def _cmd_evaluate_reading(args: argparse.Namespace) -> int:
    from training.reading_eval import (
        ModelRow,
        ReadingEvalConfig,
        evaluate_reading,
        markdown_table,
        write_outputs,
    )

    config = _load_config(args, ReadingEvalConfig, ("limit",))
    for system in args.system:
        name, sep, folder = system.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--system {system!r}: expected NAME=MODEL_FOLDER")
        config.models.append(ModelRow(name=name, model=folder))
    rows, cases, texts = evaluate_reading(config)
    table = markdown_table(rows, len(cases))
    print(f"{len(cases)} records of PTB-XL folds {config.test_folds}")
    print(table)
    if args.output is not None:
        write_outputs(args.output, table, rows, cases, texts)
        print(f"wrote {args.output.with_suffix('.md')} and {args.output.with_suffix('.json')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecg-train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_dataset,
        _add_stage0,
        _add_stage1,
        _add_stage2,
        _add_evaluate,
        _add_evaluate_reading,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (TrainingConfigError, ValueError, EcgDecodeError, VlmUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
