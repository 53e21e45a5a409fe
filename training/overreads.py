"""Confirmed over-reads -> image/report pairs, in the JSONL format of training/dataset.py.

Each report a physician confirmed or corrected in the gateway (gateway/overread) becomes
one sample: the page rendered from the kept samples exactly as the training pages are
(no patient header), the physician's statements and measurements as the targets, and
the machine's preliminary report as `rule_report`, so a model learns from where the
physician disagreed. A report without samples (a received picture or PDF, which may
show the patient) is left out and counted.

The export holds what a PTB-XL pair holds and no more: the job number as the record's
number, no UID, no name, no dates; the physician's impression (`original_report`) with
the patient's identifying values and every date blanked. Samples are split by patient
(a hash of the gateway's patient key picks a fold, as PTB-XL's strat_fold keeps a
patient's records together).

    ecg-train dataset --from-overreads /etc/ecg-gateway/gateway.yaml --out out/training/overreads
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from pathlib import Path

import model
from gateway.config import load_config
from gateway.delivery import DeliveryError, load_package
from gateway.delivery.base import redact
from gateway.store import SqliteStore, Store, open_store
from model.ecg import Ecg
from model.report import Report
from training.augment import DEFAULT_LAYOUT
from training.balance import superclasses
from training.dataset import SAMPLE_FIELDS, SPLITS, STATEMENTS_CSV, DatasetConfig, image_path
from training.targets import HEART_AXIS_TEXT, alignment_target, load_scp_statements, report_target

_PAGE = 500  # reports read from the store at a time


def open_source(source: str) -> Store:
    """The store named by `source`: a gateway.yaml (its store), a SQLite store file, or
    a postgresql:// URL. Raises ValueError naming what it could not open."""
    if source.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(source, Path(tempfile.mkdtemp(prefix="ecg-overreads-")))
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{source}: no such gateway config or store file")
    if path.suffix in (".yaml", ".yml"):
        config = load_config(path)
        if config.store.url is None and not config.store_path.is_file():
            raise ValueError(f"{config.store_path}: no store (has the gateway run?)")
        return open_store(config)
    return SqliteStore(path)


def export_overreads(store: Store, config: DatasetConfig, out: Path) -> dict[str, object]:
    """Write out/{train,val,test}.jsonl, out/images/ and out/manifest.json; the manifest."""
    statements = load_scp_statements(config.ptbxl_dir / STATEMENTS_CSV)
    fold_split = {fold: split for split, folds in config.splits.items() for fold in folds}
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    files = {split: (out / f"{split}.jsonl").open("w", encoding="utf-8") for split in SPLITS}
    try:
        after = 0
        while versions := store.confirmed_reports(after, _PAGE):
            after = versions[-1].job_id
            for version in versions:
                sample = _sample(store, version.job_id, version.report_json, config, statements)
                if isinstance(sample, str):
                    counts[f"skipped: {sample}"] += 1
                    continue
                fold, image = sample.pop("_fold"), sample.pop("_image")
                split = fold_split.get(fold)
                if split is None:
                    counts["skipped: fold in no split"] += 1
                    continue
                (out / sample["image"]).parent.mkdir(parents=True, exist_ok=True)
                (out / sample["image"]).write_bytes(image)
                sample.update(split=split, strat_fold=fold)
                files[split].write(json.dumps(sample, ensure_ascii=False) + "\n")
                counts[split] += 1
    finally:
        for handle in files.values():
            handle.close()
    manifest = {
        "source": "gateway over-reads (confirmed and corrected reports)",
        "files": {split: f"{split}.jsonl" for split in SPLITS},
        "fields": list(SAMPLE_FIELDS),
        "counts": dict(sorted(counts.items())),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _sample(
    store: Store, job_id: int, report_json: str, config: DatasetConfig, statements: dict
) -> dict[str, object] | str:
    """One sample of a confirmed report, or why there is none."""
    job = store.get_job(job_id)
    directory = store.report_directory(job) if job is not None else None
    if directory is None:
        return "report files removed by retention"
    try:
        package = load_package(directory)
    except DeliveryError:
        return "report package unreadable"
    if package.waveform is None:
        return "no waveform (a received picture or PDF)"
    confirmed = Report.model_validate_json(report_json)
    machine = store.report_versions(job_id)[0]
    samples = package.waveform
    page = model.render_png(
        Ecg(samples.signal, samples.sampling_rate, samples.lead_names),
        dpi=config.dpi,
        header=False,
        layout=DEFAULT_LAYOUT,
    )
    codes = {s.code: 100.0 for s in confirmed.statements if s.code in statements}
    axis = next((s.code for s in confirmed.statements if s.code in HEART_AXIS_TEXT), None)
    measured = confirmed.measurements
    rule_report = Report.model_validate_json(machine.report_json)
    return {
        "id": f"overread-{job_id}",
        "ecg_id": job_id,
        "copy": 0,
        "image": image_path(job_id, 0, ".png"),
        "record": f"overread/{job_id}",
        "target_report": report_target(codes, axis, measured, statements),
        "target_alignment": alignment_target(codes, axis, measured, statements),
        "scp_codes": codes,
        "superclasses": superclasses(codes, statements),
        "heart_axis": axis,
        "original_report": redact(confirmed.impression, package, limit=4000),
        "augmentation": None,
        "rule_report": rule_report.model_dump(mode="json", exclude={"created_at"}),
        "_fold": _fold(job.patient_key or f"job-{job_id}"),
        "_image": page,
    }


def _fold(patient_key: str) -> int:
    """1..10 from the patient key: the same patient always lands in the same split."""
    return int(hashlib.sha256(patient_key.encode()).hexdigest(), 16) % 10 + 1
