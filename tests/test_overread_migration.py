"""A store of an older release (SQLite: the first one; PostgreSQL: its first schema) with
a finished and delivered job is migrated on open: its delivery is kept as version 1, its
report enters the over-read worklist, and a confirmation is delivered as version 2."""

from __future__ import annotations

import shutil
import sqlite3

import psycopg
import pytest
from overread_support import SMITH, Site

from gateway.store.local_copies import read_report_files
from gateway.store.postgres_schema import MIGRATIONS
from tests.old_stores import SQLITE_SCHEMA_V1

_JOB = (
    "INSERT INTO jobs (id, sop_instance_uid, sop_class_uid, content_sha256, spool_path, kind,"
    " calling_ae, state, available_at, report_dir, created_at, updated_at)"
    " VALUES (7, '1.2.3.7', '1.2.840.10008.5.1.4.1.1.9.1.1', 'abc', 'gone.dcm',"
    " 'ecg-waveform', 'CART1', 'done', 1, {report_dir}, 1, 1)"
)
_DELIVERY = (
    "INSERT INTO deliveries (id, job_id, destination, patient_key, state, attempts,"
    " next_attempt_at, created_at, updated_at, sent_at)"
    " VALUES (3, 7, 'outbox', 'p:PAT-0042', 'sent', 1, 1, 1, 1, 1)"
)


def _old_sqlite_store(site_dir, report_dir) -> None:
    site_dir.mkdir(parents=True)
    with sqlite3.connect(site_dir / "gateway.sqlite3") as conn:
        conn.executescript(SQLITE_SCHEMA_V1)  # the first release's store
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
        [old] = site.store.list_deliveries()  # the first release's queued job has none
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
