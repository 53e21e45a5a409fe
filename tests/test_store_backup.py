"""`ecg-gateway store backup FILE`: SQLite's online backup, pg_dump for PostgreSQL, taken
while the store is open; a backup never overwrites a file, and without pg_dump the
command says what to install instead of half-doing it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gateway.store import NewJob, SqliteStore
from gateway.store.postgres import PostgresStore
from tests.gateway_process import REPO
from tests.postgres import server_binaries

_JOB = NewJob(
    sop_instance_uid="1.2.3",
    sop_class_uid="1.2.840.10008.5.1.4.1.1.9.1.1",
    content_sha256="a" * 64,
    spool_path="x.dcm",
    kind="ecg-waveform",
    calling_ae="CART",
    called_ae="ECGGW",
    peer="127.0.0.1:1000",
)


def _backup(config: Path, target: Path, path_env: str | None = None) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": path_env or "/usr/local/bin:/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "store", "backup", "-c", str(config), str(target)],
        capture_output=True, text=True, cwd=REPO, env=env, check=False, timeout=120,
    )  # fmt: skip


def test_sqlite_backup_while_the_store_is_open_holds_its_jobs(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    store = SqliteStore(tmp_path / "data" / "gateway.sqlite3")
    store.add_job(_JOB)
    try:
        done = _backup(config, tmp_path / "copy.sqlite3")
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(tmp_path / "copy.sqlite3") as copy:
            assert copy.execute("SELECT sop_instance_uid FROM jobs").fetchall() == [("1.2.3",)]
        again = _backup(config, tmp_path / "copy.sqlite3")
        assert again.returncode == 2 and "never overwrites" in again.stderr
    finally:
        store.close()


def test_postgresql_backup_is_a_pg_dump_that_restores(postgres_cluster, postgres_url, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(f"store: {postgres_url}\ndata_dir: {tmp_path / 'data'}\n")
    store = PostgresStore(postgres_url, tmp_path / "cache")
    store.add_job(_JOB, content=b"DICM")
    store.close()
    done = _backup(config, tmp_path / "ecg.dump")
    assert done.returncode == 0, done.stderr
    restored = postgres_cluster.new_database()
    subprocess.run(
        [str(server_binaries() / "pg_restore"), f"--dbname={restored}", str(tmp_path / "ecg.dump")],
        check=True, capture_output=True,
    )  # fmt: skip
    with psycopg.connect(restored) as conn:
        row = conn.execute("SELECT j.sop_instance_uid, o.content FROM jobs j JOIN objects o"
                           " ON o.job_id = j.id").fetchone()  # fmt: skip
    assert row == ("1.2.3", b"DICM")


def test_postgresql_backup_without_pg_dump_says_what_to_install(postgres_url, tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(f"store: {postgres_url}\ndata_dir: {tmp_path / 'data'}\n")
    done = _backup(config, tmp_path / "ecg.dump", path_env=str(tmp_path))
    assert done.returncode == 1
    assert "pg_dump not found" in done.stderr and "postgresql-client" in done.stderr
    assert not (tmp_path / "ecg.dump").exists()


@pytest.mark.parametrize("url", ["postgresql://ecg:secret@db/ecg", "mysql://db/ecg"])
def test_a_store_url_with_a_password_or_another_database_is_refused(tmp_path, url):
    from gateway.config import ConfigError, load_config

    config = tmp_path / "gateway.yaml"
    config.write_text(f"workers: 2\nstore: {url}\n")
    with pytest.raises(ConfigError, match=r"line 2: store.url: .*(password|postgresql://)"):
        load_config(config)


def test_the_password_comes_from_the_password_file(tmp_path):
    from gateway.config import load_config

    (tmp_path / "password").write_text("s3cret\n")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "store:\n  url: postgresql://ecg@db:5432/ecg?sslmode=verify-full&sslrootcert=/ca.pem\n"
        f"  password_file: {tmp_path / 'password'}\n"
    )
    conninfo = psycopg.conninfo.conninfo_to_dict(load_config(config).store.conninfo())
    assert conninfo["password"] == "s3cret" and conninfo["sslmode"] == "verify-full"
    assert conninfo["sslrootcert"] == "/ca.pem"
