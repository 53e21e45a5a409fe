"""The shared store: PostgreSQL through psycopg 3, for several gateway nodes on one
database (as Orthanc and dcm4chee run several servers on one database).

Same queries as the embedded store (queries.py); what differs is here. A lease locks its
rows with `FOR UPDATE SKIP LOCKED`, so nodes leasing at the same moment take different
jobs without waiting on each other. Received objects and report files live in the
database (bytea), committed in the same transaction as the job and its completion: one
commit makes an object durable for every node, no shared file system is needed, and a
node keeps nothing another node needs (its files are a cache, local_copies.py).

A connection pool (psycopg_pool) serves the server's threads; a connection the database
dropped fails its call and is replaced, so losing the database makes calls fail with
StoreError (intake answers 0xA700) and the store recovers by itself when it returns.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from gateway.store.local_copies import LocalCopies, read_report_files
from gateway.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from gateway.store.queries import Store
from gateway.store.records import Delivery, Job, StoreError, clock

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5
# How long a call waits for a connection before it fails (intake then answers 0xA700).
_WAIT_FOR_CONNECTION_S = 5.0
_MIGRATION_LOCK = 0x45434757  # pg_advisory_xact_lock key: one node migrates at a time


class PostgresStore(Store):
    """The store in a PostgreSQL database shared by every gateway node."""

    _LOCK_FOR_LEASE = " FOR UPDATE SKIP LOCKED"
    _DELIVERY_LEASE_SET = ", lease_owner = :node"

    def __init__(
        self, conninfo: str, cache_dir: Path, node: str = "", max_connections: int = 20
    ) -> None:
        """`node`: this gateway node's name, the prefix of its workers' lease owners (a
        restart releases its own leases, never another node's); "" for a CLI."""
        self._where = describe(conninfo)
        self._conninfo = conninfo
        self.node = node
        self.copies = LocalCopies(cache_dir)
        self._migrate(conninfo)
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            # autocommit: a single statement needs no BEGIN and COMMIT round trips;
            # _transaction opens a transaction block where there are several.
            kwargs={
                "row_factory": dict_row,
                "connect_timeout": _CONNECT_TIMEOUT_S,
                "autocommit": True,
            },
            timeout=_WAIT_FOR_CONNECTION_S,
            name="gateway-store",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=2 * _CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreError(f"{self._where}: cannot open the store: {exc}") from exc

    def __str__(self) -> str:
        return self._where

    def close(self) -> None:
        self._pool.close()

    @property
    def keeps_objects(self) -> bool:
        return True

    def holds_object(self, job: Job) -> bool:
        """Retention clears spool_path in the transaction that deletes the object."""
        return bool(job.spool_path)

    @property
    def schema_version(self) -> int:
        with self._transaction() as conn:
            return _schema_version(conn)

    def check_writable(self) -> None:
        """Raise StoreError unless a write commits (the database is up and accepts writes:
        not a read-only standby, not out of disk)."""
        with self._transaction() as conn:
            conn.execute("UPDATE schema_version SET version = version")

    def backup(self, target: Path) -> None:
        """pg_dump's custom format (restore with pg_restore): a consistent snapshot while
        every node keeps working. The password goes by environment, not the command line."""
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise StoreError(
                f"{self._where}: pg_dump not found: install PostgreSQL's client tools (Debian:"
                f" postgresql-client, the server's major version or newer), or back up the"
                f" database as your PostgreSQL service does (pg_basebackup, managed snapshots)"
            )
        parts = conninfo_to_dict(self._conninfo)
        password = parts.pop("password", None)
        env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
        command = [
            pg_dump,
            "--format=custom",
            f"--file={target}",
            f"--dbname={make_conninfo(**parts)}",
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StoreError(
                f"{self._where}: pg_dump failed: {_first_line(Exception(done.stderr))}"
            )

    def _migrate(self, conninfo: str) -> None:
        """Bring the database to this version in one transaction, under an advisory lock
        so two nodes starting together do not both migrate; refuse a newer schema."""
        try:
            conn = psycopg.connect(
                conninfo, connect_timeout=_CONNECT_TIMEOUT_S, row_factory=dict_row
            )
        except psycopg.Error as exc:
            raise StoreError(f"{self._where}: cannot connect: {_first_line(exc)}") from exc
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                version = _schema_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self._where}: schema version {version} is newer than this gateway"
                    )
                if version < SCHEMA_VERSION:
                    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
                    for step in range(version + 1, SCHEMA_VERSION + 1):
                        for statement in MIGRATIONS[step]:
                            conn.execute(statement)
                    conn.execute("DELETE FROM schema_version")
                    conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
                    log.info("%s: schema migrated from %d to %d", self, version, SCHEMA_VERSION)
        except psycopg.Error as exc:
            raise StoreError(f"{self._where}: cannot migrate the schema: {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in one transaction: committed at the end, rolled back on
        any error."""
        with self._statement() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _lease_transaction(self) -> Iterator[psycopg.Connection]:
        """A lease commits without waiting for the WAL flush (synchronous_commit off for
        this transaction only): the database crashing loses at most the lease, and its
        job or delivery is leased again. Every other commit waits for the disk."""
        with self._transaction() as conn:
            conn.execute("SET LOCAL synchronous_commit TO OFF")
            yield conn

    @contextmanager
    def _statement(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit. One the database dropped fails this call
        (StoreError) and is discarded by the pool, which connects anew."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"{self._where}: {_first_line(exc)}") from exc

    def _execute(self, conn: psycopg.Connection, sql: str, params: tuple | dict = ()) -> Any:
        return conn.execute(_placeholders(sql), params)

    def _executemany(self, conn: psycopg.Connection, sql: str, rows: list[tuple]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)

    def _serialise_uid(self, conn: psycopg.Connection, sop_instance_uid: str) -> None:
        """Two nodes receiving the same UID at once: one decides, then the other sees it
        (a duplicate, or a correction), instead of both deciding on what they saw."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (sop_instance_uid,))

    def _keep_object(self, conn: psycopg.Connection, job_id: int, content: bytes | None) -> None:
        if content is None:
            raise StoreError(f"{self._where}: job {job_id}: the object itself is missing")
        conn.execute("INSERT INTO objects (job_id, content) VALUES (%s, %s)", (job_id, content))

    def _leased(self, conn: psycopg.Connection, job: Job) -> Job:
        row = conn.execute("SELECT content FROM objects WHERE job_id = %s", (job.id,)).fetchone()
        suffix = Path(job.spool_path).suffix or ".dcm"
        if row is None:  # purged by retention: decoding then says the file is gone
            return replace(job, spool_path=str(self.copies.object_path(job.id, suffix)))
        path = self.copies.write_object(job.id, suffix, row["content"])
        return replace(job, spool_path=str(path))

    def _keep_report(self, conn: psycopg.Connection, job_id: int, report_dir: str) -> None:
        files = read_report_files(Path(report_dir))
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO report_files (job_id, name, content) VALUES (%s, %s, %s)"
                " ON CONFLICT (job_id, name) DO UPDATE SET content = EXCLUDED.content",
                [(job_id, name, content) for name, content in files.items()],
            )

    def _completed(self, job_id: int, report_dir: str) -> None:
        self.copies.drop_object(job_id)
        self.copies.adopt_report(Path(report_dir).name, Path(report_dir))

    def _deliverable(self, conn: psycopg.Connection, deliveries: list[Delivery]) -> list[Delivery]:
        ready = []
        for delivery in deliveries:
            if delivery.report_dir is None:  # purged: the sweeper says so
                ready.append(delivery)
                continue
            directory = self.copies.write_report(
                Path(delivery.report_dir).name,
                lambda job_id=delivery.job_id: self._report_files(conn, job_id),
            )
            ready.append(replace(delivery, report_dir=str(directory)))
        return ready

    def report_files_of(self, job: Job) -> Path | None:
        if not job.report_dir:
            return None
        with self._statement() as conn:
            return self.copies.write_report(
                Path(job.report_dir).name, lambda: self._report_files(conn, job.id)
            )

    def _report_files(self, conn: psycopg.Connection, job_id: int) -> dict[str, bytes]:
        rows = conn.execute(
            "SELECT name, content FROM report_files WHERE job_id = %s", (job_id,)
        ).fetchall()
        return {row["name"]: row["content"] for row in rows}

    def _purgeable(self, job: Job) -> Job:
        return replace(
            job,
            spool_path=str(self.copies.object_path(job.id, Path(job.spool_path).suffix or ".dcm")),
            report_dir=str(self.copies.report_dir(Path(job.report_dir or str(job.id)).name)),
        )

    def _forget_files(self, conn: psycopg.Connection, job_id: int) -> None:
        conn.execute("DELETE FROM objects WHERE job_id = %s", (job_id,))
        conn.execute("DELETE FROM report_files WHERE job_id = %s", (job_id,))

    def prune_local_copies(self, cutoff: float) -> int:
        return self.copies.prune(cutoff)

    def recover_after_restart(self, now: float | None = None) -> int:
        """Requeue the jobs and deliveries this node's previous run left leased (never
        another node's: theirs are theirs until their leases run out), and empty this
        node's copies. Call only while holding the data-dir lock, which makes this
        process the only one of its node."""
        if not self.node:
            raise StoreError(f"{self._where}: a node name is needed to recover its leases")
        now = clock(now)
        self.copies.clear()
        requeued = self._requeue_leased_jobs(f"{self.node}:", now)
        self._update(
            "UPDATE deliveries SET lease_expires_at = NULL, lease_owner = NULL"
            " WHERE lease_owner = :node AND lease_expires_at IS NOT NULL",
            {"node": self.node},
        )
        return requeued


def describe(conninfo: str) -> str:
    """Where the database is, for messages: user@host:port/dbname, never the password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "postgresql (unparseable connection string)"
    host = parts.get("host") or "localhost"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


def _schema_version(conn: psycopg.Connection) -> int:
    found = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL AS found").fetchone()
    if not found["found"]:
        return 0
    row = conn.execute("SELECT max(version) AS version FROM schema_version").fetchone()
    return int(row["version"] or 0)


@cache
def _placeholders(sql: str) -> str:
    """queries.py's `?` and `:name` parameters as psycopg's `%s` and `%(name)s`."""
    sql = sql.replace("%", "%%").replace("?", "%s")
    return re.sub(r"(?<![:\w]):([a-z_]+)", r"%(\1)s", sql)


def _first_line(exc: Exception) -> str:
    """libpq's messages run over several lines (hints, the query): the log gets one."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
