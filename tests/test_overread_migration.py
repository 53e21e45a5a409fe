"""A store of the release before report versions, with finished and delivered jobs, is
migrated on open (SQLite and PostgreSQL): its deliveries are kept as version 1, its
reports enter the over-read worklist, and a confirmation is delivered as version 2."""

from __future__ import annotations

import shutil
import sqlite3

import psycopg
import pytest
from overread_support import SMITH, Site

from gateway.store.local_copies import read_report_files
from gateway.store.postgres_schema import MIGRATIONS

# The SQLite store as the release before report versions created it (schema 4).
_SQLITE_V4 = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sop_instance_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL, content_sha256 TEXT NOT NULL, spool_path TEXT NOT NULL,
    kind TEXT NOT NULL, calling_ae TEXT NOT NULL DEFAULT '', called_ae TEXT NOT NULL DEFAULT '',
    peer TEXT NOT NULL DEFAULT '', modality TEXT NOT NULL DEFAULT '',
    institution TEXT NOT NULL DEFAULT '', station TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'leased', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, worker_deaths INTEGER NOT NULL DEFAULT 0,
    patient_key TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',
    available_at REAL NOT NULL, lease_owner TEXT, lease_expires_at REAL, error TEXT,
    is_correction INTEGER NOT NULL DEFAULT 0, report_dir TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, UNIQUE (sop_instance_uid, content_sha256)
);
CREATE INDEX jobs_by_state ON jobs (state, available_at);
CREATE INDEX jobs_by_patient ON jobs (patient_key, id);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL REFERENCES jobs (id),
    destination TEXT NOT NULL, patient_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, lease_expires_at REAL,
    last_error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, sent_at REAL,
    UNIQUE (job_id, destination)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_in_receipt_order ON deliveries (destination, patient_key, job_id);
PRAGMA user_version = 4;
"""
_JOB = (
    "INSERT INTO jobs (id, sop_instance_uid, sop_class_uid, content_sha256, spool_path, kind,"
    " calling_ae, state, patient_key, available_at, report_dir, created_at, updated_at)"
    " VALUES (7, '1.2.3.7', '1.2.840.10008.5.1.4.1.1.9.1.1', 'abc', 'gone.dcm',"
    " 'ecg-waveform', 'CART1', 'done', 'p:PAT-0042', 1, {report_dir}, 1, 1)"
)
_DELIVERY = (
    "INSERT INTO deliveries (id, job_id, destination, patient_key, state, attempts,"
    " next_attempt_at, created_at, updated_at, sent_at)"
    " VALUES (3, 7, 'outbox', 'p:PAT-0042', 'sent', 1, 1, 1, 1, 1)"
)


def _old_sqlite_store(site_dir, report_dir) -> None:
    site_dir.mkdir(parents=True)
    with sqlite3.connect(site_dir / "gateway.sqlite3") as conn:
        conn.executescript(_SQLITE_V4)
        conn.execute(_JOB.format(report_dir="?"), (str(report_dir),))
        conn.execute(_DELIVERY)


def _old_postgres_store(url: str, report_dir) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(_JOB.format(report_dir="%s"), (str(report_dir),))
        conn.execute(_DELIVERY)
        for name, content in read_report_files(report_dir).items():
            conn.execute(
                "INSERT INTO report_files (job_id, name, content) VALUES (7, %s, %s)",
                (name, content),
            )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_older_store_is_migrated_and_its_reports_can_be_confirmed(
    backend, request, tmp_path, shared_data
):
    maker = Site(tmp_path / "maker", None)
    try:
        made = maker.store.get_job(maker.receive(shared_data))
        report_dir = tmp_path / "old-reports" / "7"
        shutil.copytree(made.report_dir, report_dir)
    finally:
        maker.close()
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    if url is None:
        _old_sqlite_store(tmp_path / "old", report_dir)
    else:
        _old_postgres_store(url, report_dir)
        shutil.rmtree(report_dir)  # a PostgreSQL store keeps its report files itself

    site = Site(tmp_path / "old", url)  # opening it migrates it
    try:
        [old] = site.store.list_deliveries()
        assert (old.id, old.job_id, old.report_version, old.state) == (3, 7, 1, "sent")
        assert site.service.worklist() == []
        assert site.service.index_existing_reports() == 1
        [entry] = site.service.worklist()
        assert (entry.job_id, entry.version, entry.patient_id) == (7, 1, "PAT-0042")
        report = site.service.confirm(7, SMITH, None, base_version=1)
        assert (report.status, report.version) == ("final", 2)
        assert site.sweeper.sweep().sent == 1
        states = sorted((d.report_version, d.state) for d in site.store.list_deliveries())
        assert states == [(1, "sent"), (2, "sent")]
        assert site.service.index_existing_reports() == 0
    finally:
        site.close()
