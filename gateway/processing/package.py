"""What the pipeline hands to routing and delivery: one ECG's report and artefacts.

It is written to disk by the pipeline (so delivery survives restarts and retries
without re-running the engine) and read back by each deliverer. Deliverers join
the report with the patient metadata here, at the last moment.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from gateway.durable import write_atomic
from gateway.store.order_records import OrderReference
from model.ecg import Ecg, EcgMetadata
from model.report import Report

ObjectKind = Literal["ecg-waveform", "secondary-capture", "pdf"]

_REPORT = "report.json"
_CONTEXT = "context.json"
_PNG = "ecg.png"
_PDF = "ecg.pdf"
_SOURCE_IMAGE = "source-image"
_WAVEFORM = "waveform.npz"


@dataclass(frozen=True)
class Association:
    """Who sent the object: routing rules match on these."""

    calling_ae: str = ""
    called_ae: str = ""
    peer_address: str = ""
    source: str = ""  # a watched folder's or the upload endpoint's source name


@dataclass
class ReportPackage:
    """Everything delivered for one received object."""

    job_id: int
    kind: ObjectKind
    metadata: EcgMetadata
    report: Report
    association: Association = field(default_factory=Association)
    png: bytes | None = None
    pdf: bytes | None = None
    source_image: bytes | None = None
    source_image_type: str | None = None
    # the samples alone (no metadata), for destinations that send the waveform itself
    waveform: Ecg | None = None
    # the order this ECG was matched to (IHE REWF); None for an unordered ECG
    order: OrderReference | None = None
    # set when delivered: the content version (gateway.delivery.base.content_version) of
    # the report this one replaces at its destination, so a corrected DICOM SR names the
    # SR it supersedes; not saved with the package
    replaces: str | None = None

    @property
    def sop_instance_uid(self) -> str:
        return self.metadata.sop_instance_uid or f"job-{self.job_id}"

    def save(self, directory: Path) -> None:
        """Write atomically-enough for a retry: each file via temp + rename, context last."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in ((_PNG, self.png), (_PDF, self.pdf), (_SOURCE_IMAGE, self.source_image)):
            if data is not None:
                write_atomic(directory / name, data)
        if self.waveform is not None:
            write_atomic(directory / _WAVEFORM, _waveform_to_npz(self.waveform))
        self.save_report_and_context(directory)

    def save_report_and_context(self, directory: Path) -> None:
        """Write the report, then the context (last: a package is whole once it is there);
        alone, it rewrites what matching to an order changes (the report's warnings, the
        order) in a package saved before, leaving its pictures and samples."""
        write_atomic(directory / _REPORT, self.report.model_dump_json(indent=2).encode())
        context = {
            "job_id": self.job_id,
            "kind": self.kind,
            "metadata": _metadata_to_json(self.metadata),
            "association": asdict(self.association),
            "source_image_type": self.source_image_type,
            "order": asdict(self.order) if self.order is not None else None,
        }
        write_atomic(directory / _CONTEXT, json.dumps(context, indent=2).encode())

    @classmethod
    def load(cls, directory: Path) -> ReportPackage:
        context = json.loads((directory / _CONTEXT).read_text())
        return cls(
            job_id=int(context["job_id"]),
            kind=context["kind"],
            metadata=_metadata_from_json(context["metadata"]),
            report=Report.model_validate_json((directory / _REPORT).read_bytes()),
            association=Association(**context["association"]),
            png=_read_optional(directory / _PNG),
            pdf=_read_optional(directory / _PDF),
            source_image=_read_optional(directory / _SOURCE_IMAGE),
            source_image_type=context.get("source_image_type"),
            waveform=_waveform_from_npz(_read_optional(directory / _WAVEFORM)),
            order=OrderReference(**context["order"]) if context.get("order") else None,
        )


def _metadata_to_json(metadata: EcgMetadata) -> dict:
    data = asdict(metadata)
    if metadata.acquisition_time is not None:
        data["acquisition_time"] = metadata.acquisition_time.isoformat()
    return data


def _metadata_from_json(data: dict) -> EcgMetadata:
    if data.get("acquisition_time"):
        data = {**data, "acquisition_time": datetime.fromisoformat(data["acquisition_time"])}
    return EcgMetadata(**{**data, "warnings": tuple(data.get("warnings", ()))})


def _read_optional(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _waveform_to_npz(waveform: Ecg) -> bytes:
    out = io.BytesIO()
    np.savez(
        out,
        signal=waveform.signal,
        sampling_rate=np.float64(waveform.sampling_rate),
        lead_names=np.array(waveform.lead_names, dtype=str),
    )
    return out.getvalue()


def _waveform_from_npz(data: bytes | None) -> Ecg | None:
    if data is None:
        return None
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return Ecg(
            arrays["signal"], float(arrays["sampling_rate"]), tuple(arrays["lead_names"].tolist())
        )
