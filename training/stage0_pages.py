"""Stage 0's pages: generated and real ECGs, rendered by the gateway, read by its engine.

Two sources of 10 s 12-lead ECGs:
- deepfake-ecg (PyPI, MIT, Thambawita et al. 2021): Pulse2Pulse, a GAN trained on
  real 12-lead ECGs, ships its generator weights in the wheel; it turns uniform noise
  into 8 leads (I, II, V1-V6) at 500 Hz in microvolts, and the four other limb leads
  follow from Einthoven's and Goldberger's equations (model.ecg.derive_limb_leads).
  Unlimited, offline, and free of patient data; mostly sinus rhythm.
- PTB-XL records of the training folds (never fold 9, kept for the val loss, nor 10).

Each ECG is rendered by model.render_png (no patient header) and measured by the
measurement engine (model.analyze), whose rate, intervals, axis, rhythm and conduction
statements become the target: what stage 0 teaches the vision tower to read off the
page. Copy 0 of every real record is the clean page the gateway serves; further copies,
and every second generated ECG, carry training/augment.py's distortions.

Output in `pages_dir`: images/, train.jsonl, val.jsonl (rows: id, source, image,
target_reading, rule_report) and manifest.json; an existing manifest with the same
settings is reused, so a resumed run does not render again.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import model
from model.ecg import STANDARD_LEADS, Ecg, derive_limb_leads
from model.report import Measurements, Report
from model.vlm.prompt import measurement_phrases
from model.vlm.settings import VlmUnavailable
from training.augment import AugmentConfig, sample_params, sample_seed
from training.dataset import (
    STATEMENTS_CSV,
    DatasetConfig,
    PtbxlRecord,
    read_ptbxl_index,
    render_page,
)
from training.targets import load_scp_statements

DEEPFAKE_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
DEEPFAKE_RATE_HZ = 500.0
DEEPFAKE_SCALE_UV = 6000.0  # deepfakeecg.generate: generator output x 6000 -> microvolts
INSTALL_DEEPFAKE = "pip install 'deepfake-ecg>=1.1.2,<1.2'"
# Engine statements of the axis (not SCP codes: model/scp_statements.py explains them).
AXIS_CODES = ("LAD", "RAD")


def deepfake_generator() -> Any:
    """The pretrained Pulse2Pulse generator in eval mode, loaded as tensors only (the
    package's own generate() writes text files and unpickles with weights_only off)."""
    spec = importlib.util.find_spec("deepfakeecg")
    if spec is None or not spec.submodule_search_locations:
        raise VlmUnavailable(f"stage 0's generated ECGs need deepfake-ecg: {INSTALL_DEEPFAKE}")
    from deepfakeecg.models import Generator

    weights = Path(next(iter(spec.submodule_search_locations))) / "checkpoints" / "g_stat.pt"
    generator = Generator()
    generator.load_state_dict(
        torch.load(weights, map_location="cpu", weights_only=True)["stat_dict"]
    )
    return generator.eval()


def generated_ecgs(count: int, seed: int, batch: int = 8) -> Iterator[Ecg]:
    """`count` generated 12-lead ECGs, the same ones for the same seed."""
    generator = deepfake_generator()
    noise = torch.Generator().manual_seed(seed)
    made = 0
    while made < count:
        n = min(batch, count - made)
        with torch.no_grad():
            signals = generator(torch.rand(n, 8, 5000, generator=noise) * 2 - 1)
        for signal in signals.numpy() * DEEPFAKE_SCALE_UV / 1000.0:  # millivolts
            leads = derive_limb_leads(dict(zip(DEEPFAKE_LEADS, signal, strict=True)))
            yield Ecg(
                np.stack([leads[name] for name in STANDARD_LEADS]), DEEPFAKE_RATE_HZ, STANDARD_LEADS
            )
        made += n


def reading_target(report: Report, groups: dict[str, str]) -> str:
    """What the page shows according to the measurement engine (reading_text); `groups`
    maps SCP codes to their report group."""
    return reading_text(
        [s.text for s in report.statements if groups.get(s.code) == "rhythm"],
        report.measurements,
        [s.text for s in report.statements if s.code in AXIS_CODES],
        [s.text for s in report.statements if groups.get(s.code) == "conduction"],
    )


def reading_text(
    rhythm: list[str], measured: Measurements, axis: list[str], conduction: list[str]
) -> str:
    """Stage 0's answer format, in the words of the report format: rhythm, rate and
    intervals, axis, conduction."""
    phrases = measurement_phrases(measured)
    rate = "; ".join(phrases[:5])
    return " ".join(
        (
            f"Rhythm: {'; '.join(rhythm) or 'not stated'}.",
            f"{rate[0].upper()}{rate[1:]}.",
            f"Axis: {'; '.join([phrases[6], *axis])}.",
            f"Conduction: {'; '.join(conduction) or 'normal'}.",
        )
    )


def build_pages(
    pages_dir: Path,
    ptbxl_dir: Path,
    train_folds: list[int],
    generated: int,
    real_copies: int,
    dpi: int,
    augment: AugmentConfig,
    seed: int,
    limit: int | None = None,
) -> dict[str, Any]:
    """Render, measure and write the pages (see the module docstring); the manifest."""
    settings = {
        "ptbxl_dir": str(ptbxl_dir),
        "train_folds": train_folds,
        "generated": generated,
        "real_copies": real_copies,
        "dpi": dpi,
        "augment": json.loads(augment.model_dump_json()),
        "seed": seed,
        "limit": limit,
    }
    manifest_path = pages_dir / "manifest.json"
    earlier = _manifest_with(manifest_path, settings)
    if earlier is not None:
        return earlier
    pages = _PageWriter(pages_dir, dpi, augment, _report_groups(ptbxl_dir))
    records = _ptbxl_records(ptbxl_dir, train_folds, limit)
    counts = {"train": 0, "val": 0}
    # The files below are rewritten now: a run cut short must not leave them under the
    # manifest of the pages they replace (a later run with its settings would reuse them).
    manifest_path.unlink(missing_ok=True)
    pages_dir.mkdir(parents=True, exist_ok=True)
    with (
        (pages_dir / "train.jsonl").open("w", encoding="utf-8") as train,
        (pages_dir / "val.jsonl").open("w", encoding="utf-8") as val,
    ):
        files = {"train": train, "val": val}
        for split, row in _real_pages(pages, ptbxl_dir, records, real_copies, seed):
            files[split].write(json.dumps(row) + "\n")
            counts[split] += 1
        for row in _generated_pages(pages, generated, seed):
            train.write(json.dumps(row) + "\n")
            counts["train"] += 1
    manifest = {"settings": settings, "samples": counts}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _manifest_with(manifest_path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of pages already built with these settings (a resumed run does not
    render again); None when there is none or it was built otherwise."""
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    return manifest if manifest.get("settings") == settings else None


def _report_groups(ptbxl_dir: Path) -> dict[str, str]:
    """Each SCP code's report group (rhythm, conduction, ...): what reading_target sorts by."""
    return {
        code: statement.group
        for code, statement in load_scp_statements(ptbxl_dir / STATEMENTS_CSV).items()
    }


def _ptbxl_records(ptbxl_dir: Path, train_folds: list[int], limit: int | None) -> list[PtbxlRecord]:
    """The PTB-XL index with fold 9 as val and fold 10 as test (never paged)."""
    index = DatasetConfig(
        ptbxl_dir=ptbxl_dir,
        limit=limit,
        splits={"train": train_folds, "val": [9], "test": [10]},
    )
    records, _ = read_ptbxl_index(index)
    return records


@dataclass(frozen=True)
class _PageWriter:
    """Renders an ECG into `pages_dir`/images and returns its row, the engine's reading
    of it as the target."""

    pages_dir: Path
    dpi: int
    augment: AugmentConfig
    groups: dict[str, str]

    def page(self, ecg: Ecg, sample_id: str, augmented: bool, seed: int) -> dict[str, Any]:
        report = model.analyze(ecg)
        params = sample_params(self.augment, seed) if augmented else None
        data, suffix = render_page(ecg, params, self.dpi)
        relative = f"images/{sample_id}{suffix}"
        (self.pages_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (self.pages_dir / relative).write_bytes(data)
        return {
            "id": sample_id,
            "image": relative,
            "augmentation": params.as_dict() if params else None,
            "target_reading": reading_target(report, self.groups),
            "rule_report": report.model_dump(mode="json", exclude={"created_at"}),
        }


def _real_pages(
    pages: _PageWriter, ptbxl_dir: Path, records: list[PtbxlRecord], real_copies: int, seed: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(split, row) for each train and val record: copy 0 the clean page the gateway
    serves, and for train records `real_copies` distorted copies more."""
    for record in records:
        if record.split == "test":
            continue
        ecg = model.load(ptbxl_dir / record.record)
        copies = 1 + real_copies if record.split == "train" else 1
        for copy in range(copies):
            row = pages.page(
                ecg,
                f"ptbxl-{record.ecg_id:05d}-{copy}",
                copy > 0,
                sample_seed(seed, record.ecg_id, copy),
            )
            yield record.split, row | {"source": "ptbxl"}


def _generated_pages(pages: _PageWriter, generated: int, seed: int) -> Iterator[dict[str, Any]]:
    """The rows of `generated` deepfake-ecg ECGs (train only), every second one distorted."""
    for number, ecg in enumerate(generated_ecgs(generated, seed)):
        augmented = number % 2 == 1
        row = pages.page(
            ecg, f"deepfake-{number:06d}", augmented, sample_seed(seed, 1_000_000 + number)
        )
        yield row | {"source": "deepfake-ecg"}


def read_pages(pages_dir: Path, split: str) -> list[dict[str, Any]]:
    path = pages_dir / f"{split}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
