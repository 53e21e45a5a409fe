"""PTB-XL -> image/report pairs for both training stages, as files a trainer reads directly.

Input: a PTB-XL directory in its original layout (ptbxl_database.csv,
scp_statements.csv, records100/, records500/), the 400-record excerpt here or the
full 21,799 records unchanged. Each record is rendered by the gateway's own renderer
(no patient header), so the model learns from exactly the pages it will be shown,
and measured by the gateway's measurement engine, whose values go into the targets.

Output, in `output_dir`:
    images/NNNNN/<ecg_id>-<copy>.png|.jpg   .jpg where JPEG compression was drawn
    train.jsonl, val.jsonl, test.jsonl   one JSON object per sample (fields: SAMPLE_FIELDS)
    manifest.json                        counts per class and split, config, sources

Splits follow PTB-XL's strat_fold (1-8 train, 9 val, 10 test by default): the folds
keep all records of a patient together. In the train split every record has copy 0
(stage 1 reads those): for `augment.clean_share` of the records (drawn per record from
the seed) the clean page the gateway renders, else an augmented one. The class balance
adds copies 1..n of rare classes, each with its own augmentation (stage 2 reads all of
them). Val and test stay clean. An augmented page stands for a scan or photo, so the
collator trains it with the prompt a received page gets (training/collate.py).
"""

from __future__ import annotations

import io
import json
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

import model
from model.ecg import Ecg
from training.augment import (
    DEFAULT_LAYOUT,
    AugmentConfig,
    AugmentParams,
    augment_image,
    augment_signal,
    encode_page,
    is_clean_copy,
    sample_params,
    sample_seed,
)
from training.balance import (
    BalanceConfig,
    balance_target,
    class_counts,
    oversample,
    record_classes,
    superclasses,
)
from training.targets import (
    ScpStatement,
    alignment_target,
    load_scp_statements,
    parse_scp_codes,
    report_target,
)

DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
REQUIRED_COLUMNS = ("scp_codes", "report", "heart_axis", "strat_fold", "filename_lr", "filename_hr")
SPLITS = ("train", "val", "test")
SAMPLE_FIELDS = (
    "id",
    "ecg_id",
    "copy",
    "split",
    "strat_fold",
    "image",
    "record",
    "target_report",
    "target_alignment",
    "scp_codes",
    "superclasses",
    "heart_axis",
    "original_report",
    "augmentation",
    "rule_report",
)


class DatasetConfig(BaseModel):
    """config/training/dataset.yaml; relative paths are taken from the working directory."""

    model_config = ConfigDict(extra="forbid")

    ptbxl_dir: Path = Path("../shared/data/ptbxl")
    output_dir: Path = Path("out/training/dataset")
    sampling_rate: Literal[100, 500] = 500
    dpi: int = Field(140, ge=50, le=600, description="model/vlm/engine.py renders 140 dpi pages")
    limit: int | None = Field(None, ge=1, description="only the first N records by ecg_id")
    workers: int = Field(1, ge=1)
    seed: int = 0
    splits: dict[str, list[int]] = Field(
        default_factory=lambda: {"train": [1, 2, 3, 4, 5, 6, 7, 8], "val": [9], "test": [10]}
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)

    @model_validator(mode="after")
    def _check_splits(self) -> DatasetConfig:
        if set(self.splits) != set(SPLITS):
            raise ValueError(f"splits must name exactly {list(SPLITS)}, got {sorted(self.splits)}")
        folds = [fold for split in SPLITS for fold in self.splits[split]]
        if len(folds) != len(set(folds)):
            raise ValueError(f"a strat_fold is in more than one split: {self.splits}")
        return self


@dataclass(frozen=True)
class PtbxlRecord:
    """One row of ptbxl_database.csv, with the fields the dataset uses."""

    ecg_id: int
    strat_fold: int
    split: str
    record: str
    scp_codes: dict[str, float]
    heart_axis: str | None
    report: str


@dataclass
class DatasetPlan:
    """What will be built, known before any rendering: records, copies and class counts."""

    records: list[PtbxlRecord]
    statements: dict[str, ScpStatement]
    copies: dict[int, int]
    unassigned: int
    balance_before: Counter[str] = field(default_factory=Counter)
    balance_after: Counter[str] = field(default_factory=Counter)
    balance_target: int = 0


# ------------------------------------------------------------------ index ----


def read_ptbxl_index(config: DatasetConfig) -> tuple[list[PtbxlRecord], int]:
    """The records to build, in ecg_id order, and how many had a fold in no split."""
    path = config.ptbxl_dir / DATABASE_CSV
    try:
        table = pd.read_csv(path, index_col="ecg_id")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read PTB-XL database: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    table = table.sort_index()
    if config.limit is not None:
        table = table.iloc[: config.limit]
    fold_split = {fold: split for split, folds in config.splits.items() for fold in folds}
    filename = "filename_hr" if config.sampling_rate == 500 else "filename_lr"
    records, unassigned = [], 0
    for ecg_id, row in table.iterrows():
        split = fold_split.get(int(row["strat_fold"]))
        if split is None:
            unassigned += 1
            continue
        try:
            codes = parse_scp_codes(str(row["scp_codes"]))
        except ValueError as exc:
            raise ValueError(f"{path}: ecg_id {ecg_id}: {exc}") from None
        records.append(
            PtbxlRecord(
                ecg_id=int(ecg_id),
                strat_fold=int(row["strat_fold"]),
                split=split,
                record=str(row[filename]),
                scp_codes=codes,
                heart_axis=None if pd.isna(row["heart_axis"]) else str(row["heart_axis"]),
                report=str(row["report"]).strip(),
            )
        )
    return records, unassigned


def plan_dataset(config: DatasetConfig) -> DatasetPlan:
    """Read the index, assign splits and decide the balancing copies of the train split."""
    statements = load_scp_statements(config.ptbxl_dir / STATEMENTS_CSV)
    records, unassigned = read_ptbxl_index(config)
    plan = DatasetPlan(records=records, statements=statements, copies={}, unassigned=unassigned)
    labels = {
        str(r.ecg_id): record_classes(r.scp_codes, statements, config.balance.common_rhythms)
        for r in records
        if r.split == "train"
    }
    plan.balance_before = class_counts(labels)
    if config.balance.enabled:
        copies = oversample(labels, config.balance, config.seed)
        plan.copies = {int(key): n for key, n in copies.items()}
        plan.balance_target = balance_target(labels, config.balance)
    plan.balance_after = class_counts(labels, {str(k): n for k, n in plan.copies.items()})
    return plan


# ---------------------------------------------------------------- samples ----


def render_page(ecg: Ecg, params: AugmentParams | None, dpi: int) -> tuple[bytes, str]:
    """The gateway's own rendering, augmented when params are given: (file bytes, suffix)."""
    if params is None:
        return model.render_png(ecg, dpi=dpi, header=False, layout=DEFAULT_LAYOUT), ".png"
    page = model.render_png(
        augment_signal(ecg, params), dpi=dpi, header=False, layout=params.layout
    )
    return encode_page(augment_image(Image.open(io.BytesIO(page)), params), params)


def image_path(ecg_id: int, copy: int, suffix: str) -> str:
    """images/<thousands>/<ecg_id>-<copy>.<suffix>: PTB-XL's own folder grouping."""
    return f"images/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}-{copy}{suffix}"


def build_record_samples(
    record: PtbxlRecord, n_copies: int, config: DatasetConfig, statements: dict[str, ScpStatement]
) -> list[dict[str, object]]:
    """Render every copy of one record and return their JSONL objects."""
    ecg = model.load(config.ptbxl_dir / record.record)
    rule_report = model.analyze(ecg)
    measured = rule_report.measurements
    shared = {
        "ecg_id": record.ecg_id,
        "split": record.split,
        "strat_fold": record.strat_fold,
        "record": record.record,
        "target_report": report_target(record.scp_codes, record.heart_axis, measured, statements),
        "target_alignment": alignment_target(
            record.scp_codes, record.heart_axis, measured, statements
        ),
        "scp_codes": record.scp_codes,
        "superclasses": superclasses(record.scp_codes, statements),
        "heart_axis": record.heart_axis,
        "original_report": record.report,
        "rule_report": rule_report.model_dump(mode="json", exclude={"created_at"}),
    }
    augmented = record.split in config.augment.splits
    samples = []
    for copy in range(1 + n_copies):
        clean = not augmented or is_clean_copy(config.augment, config.seed, record.ecg_id, copy)
        params = (
            None
            if clean
            else sample_params(config.augment, sample_seed(config.seed, record.ecg_id, copy))
        )
        data, suffix = render_page(ecg, params, config.dpi)
        relative = image_path(record.ecg_id, copy, suffix)
        target = config.output_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        samples.append(
            {
                "id": f"{record.ecg_id:05d}-{copy}",
                "copy": copy,
                "image": relative,
                "augmentation": params.as_dict() if params else None,
                **shared,
            }
        )
    return samples


_WORKER: dict[str, object] = {}


def _init_worker(config: DatasetConfig, statements: dict[str, ScpStatement]) -> None:
    _WORKER.update(config=config, statements=statements)


def _build_in_worker(task: tuple[PtbxlRecord, int]) -> list[dict[str, object]]:
    record, n_copies = task
    return build_record_samples(record, n_copies, _WORKER["config"], _WORKER["statements"])


def _sample_batches(config: DatasetConfig, plan: DatasetPlan) -> Iterator[list[dict[str, object]]]:
    """Samples record by record, in ecg_id order whether or not workers are used."""
    tasks = [(r, plan.copies.get(r.ecg_id, 0)) for r in plan.records]
    if config.workers == 1:
        for record, n_copies in tasks:
            yield build_record_samples(record, n_copies, config, plan.statements)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.workers, _init_worker, (config, plan.statements)) as pool:
        yield from pool.imap(_build_in_worker, tasks, chunksize=4)


def build_dataset(config: DatasetConfig, plan: DatasetPlan) -> dict[str, object]:
    """Render all samples, write the JSONL files and manifest.json; returns the manifest."""
    config.output_dir.mkdir(parents=True, exist_ok=True)
    tally = _Tally(plan.statements, config.balance.common_rhythms)
    files = {
        split: (config.output_dir / f"{split}.jsonl").open("w", encoding="utf-8")
        for split in SPLITS
    }
    try:
        for samples in _sample_batches(config, plan):
            for sample in samples:
                files[sample["split"]].write(json.dumps(sample, ensure_ascii=False) + "\n")
                tally.add(sample)
    finally:
        for handle in files.values():
            handle.close()
    manifest = _manifest(config, plan, tally)
    (config.output_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


class _Tally:
    """Counts per split as samples stream past, for the manifest."""

    def __init__(self, statements: dict[str, ScpStatement], common_rhythms: list[str]) -> None:
        self.statements = statements
        self.common_rhythms = common_rhythms
        self.samples: Counter[str] = Counter()
        self.records: Counter[str] = Counter()
        self.classes: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        self.codes: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        self.layouts: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}

    def add(self, sample: dict[str, object]) -> None:
        split = sample["split"]
        self.samples[split] += 1
        self.records[split] += sample["copy"] == 0
        classes = record_classes(sample["scp_codes"], self.statements, self.common_rhythms)
        self.classes[split].update(classes)
        self.codes[split].update(list(sample["scp_codes"]))
        params = sample["augmentation"]
        self.layouts[split][params["layout"] if params else DEFAULT_LAYOUT] += 1


def _manifest(config: DatasetConfig, plan: DatasetPlan, tally: _Tally) -> dict[str, object]:
    return {
        "source": {
            "ptbxl_dir": str(config.ptbxl_dir.resolve()),
            "sampling_rate": config.sampling_rate,
            "records": len(plan.records),
            "records_in_no_split": plan.unassigned,
        },
        "files": {split: f"{split}.jsonl" for split in SPLITS},
        "fields": list(SAMPLE_FIELDS),
        "splits": {
            split: {
                "folds": config.splits[split],
                "records": tally.records[split],
                "samples": tally.samples[split],
                "class_counts": dict(sorted(tally.classes[split].items())),
                "code_counts": dict(sorted(tally.codes[split].items())),
                "layouts": dict(sorted(tally.layouts[split].items())),
            }
            for split in SPLITS
        },
        "balance": {
            "classes": "PTB-XL superclasses + rhythm codes except "
            + ", ".join(config.balance.common_rhythms),
            "target": plan.balance_target,
            "before": dict(sorted(plan.balance_before.items())),
            "after": dict(sorted(plan.balance_after.items())),
            "copied_records": len(plan.copies),
            "extra_samples": sum(plan.copies.values()),
        },
        "config": json.loads(config.model_dump_json()),
    }


def read_samples(
    dataset_dir: Path, split: str, originals_only: bool = False
) -> Iterator[dict[str, object]]:
    """The samples of one split; `originals_only` drops the balancing copies (stage 1)."""
    path = Path(dataset_dir) / f"{split}.jsonl"
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number}: not JSON: {exc.msg}") from None
            if not originals_only or sample["copy"] == 0:
                yield sample
