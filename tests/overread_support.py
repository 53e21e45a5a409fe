"""A gateway for the over-read tests: a real store (SQLite or a throwaway PostgreSQL),
real intake, the real pipeline run in-thread on real ECGs, a routes file and the
delivery sweeper, wired to the over-read service as the server wires them."""

from __future__ import annotations

from pathlib import Path

from gateway.audit import Auditor
from gateway.config import AuditConfig
from gateway.delivery.sweeper import DeliverySweeper
from gateway.durable import ensure_dir
from gateway.intake.accept import Intake
from gateway.metrics import Metrics
from gateway.overread import OverreadService, Physician
from gateway.processing.workers import Workers, WorkerSettings
from gateway.routing import Router
from gateway.store import SqliteStore, Store
from tests import dicom_samples as samples

RECORDS = ("ptbxl/records500/00000/00001_hr", "ptbxl/records500/00000/00002_hr")
SMITH = Physician("smith", "Smith^Anna", "physician")
JONES = Physician("jones", "Jones^Ben", "physician")
READER = Physician("rita", "Reader^Rita", "reader")
PATIENT_ID = "PAT-0042"


def open_store(data_dir: Path, url: str | None) -> Store:
    if url is None:
        return SqliteStore(data_dir / "gateway.sqlite3")
    from gateway.store.postgres import PostgresStore

    return PostgresStore(url, data_dir / "cache", node="test-node")


class Site:
    """Store + intake + pipeline + routes + sweeper + over-read service in `data_dir`."""

    def __init__(self, data_dir: Path, url: str | None, routes: str | None = None) -> None:
        self.data_dir = data_dir
        self.url = url
        ensure_dir(data_dir / "spool")
        self.routes = data_dir / "routes.yaml"
        self.routes.write_text(
            routes
            or "destinations:\n  outbox: {type: file, directory: outbox}\ndefault: [outbox]\n"
        )
        self.store = open_store(data_dir, url)
        self.router = Router(self.routes, data_dir)
        self.intake = Intake(self.store, data_dir / "spool", Metrics())
        self.workers = Workers(
            self.store,
            self.router,
            WorkerSettings(reports_dir=data_dir / "reports", workers=1),
            Metrics(),
        )
        self.audit = Auditor(data_dir / "audit", AuditConfig(), "ECGGW")
        self.routed: list[list[str]] = []
        self.service = OverreadService(
            self.store, self.router, audit=self.audit, on_routed=self.routed.append
        )
        self.sweeper = DeliverySweeper(self.store, self.router, audit=self.audit)

    def receive(self, shared_data: Path, record: str = RECORDS[0]) -> int:
        """A real ECG (a PTB-XL record as a DICOM ECG) received and processed; its job id."""
        name = Path(record).name
        plain = samples.wfdb_ecg(shared_data, record, self.data_dir / f"{name}-plain.dcm")
        path = samples.changed_copy(
            plain, self.data_dir / f"{name}.dcm", PatientID=PATIENT_ID, PatientName="Doe^Jane"
        )
        outcome = self.intake.accept(samples.received(path))
        assert outcome.status == 0, outcome
        while self.workers.run_once("test-node:worker"):
            pass
        job = self.store.list_jobs(limit=1)[0]
        assert job.state == "done", job.error
        return job.id

    def audit_text(self) -> str:
        path = self.data_dir / "audit" / "audit-trail.jsonl"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        self.sweeper.close()
        self.audit.close()
        self.store.close()
