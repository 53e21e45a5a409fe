"""The embedded store: one SQLite file in the data directory (the default backend).

WAL mode with synchronous=FULL, so a commit survives power loss. Received objects live
in the spool (files written durably by intake before the job commits) and report files
under reports/; the queries are queries.py's, shared with the PostgreSQL backend.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.store.queries import Store
from gateway.store.records import StoreError, clock
from gateway.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION


class SqliteStore(Store):
    """One connection shared by the server's threads, serialised by a lock.

    SQLite allows one writer at a time anyway; a single connection keeps transactions
    simple. Other processes (the CLI) open their own store on the same file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc

    def __str__(self) -> str:
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @property
    def schema_version(self) -> int:
        return self._schema_version()

    def _migrate(self) -> None:
        """Create a new store, or bring an older one up to this version in one transaction."""
        if self._schema_version() == SCHEMA_VERSION:
            return
        # The version is read again under the write lock: a CLI and the gateway opening an
        # older store at the same moment must not both migrate it.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version()
            if version == SCHEMA_VERSION:
                self._conn.execute("COMMIT")
                return
            existing = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
            ).fetchone()
            if existing is not None:
                for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step]:
                        self._conn.execute(statement)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _schema_version(self) -> int:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version} is newer than this gateway")
        return version

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on any error), under the lock."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot begin a transaction: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"{self.path}: {exc}") from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """A read outside any write transaction: WAL readers never wait for a writer
        (nor for a CLI holding the write lock)."""
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    def _execute(self, conn: sqlite3.Connection, sql: str, params: tuple | dict = ()) -> Any:
        return conn.execute(sql, params)

    def _executemany(self, conn: sqlite3.Connection, sql: str, rows: list[tuple]) -> None:
        conn.executemany(sql, rows)

    def check_writable(self) -> None:
        """Raise StoreError unless a write commits: rewriting the schema version writes
        the file's header page, a real write that changes nothing."""
        with self._transaction() as conn:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def backup(self, target: Path) -> None:
        """A consistent copy of the store while the gateway runs (SQLite's online backup)."""
        try:
            destination = sqlite3.connect(target)
            try:
                with self._lock:
                    self._conn.backup(destination)
            finally:
                destination.close()
        except sqlite3.Error as exc:
            raise StoreError(f"{target}: backup failed: {exc}") from exc

    def recover_after_restart(self, now: float | None = None) -> int:
        """Requeue every leased job and delivery: call only while holding the data-dir lock.

        With the lock held no other gateway process uses this store, so every lease is a
        dead process's. The gateway stopping or crashing says nothing about the job, so
        the interrupted try does not count as an attempt (a job that kills its worker
        process is caught by record_worker_death). Returns the number requeued.
        """
        now = clock(now)
        requeued = self._requeue_leased_jobs(None, now)
        # A second transaction is safe: nothing else runs yet, and a crash between the two
        # only leaves work that the next start does again.
        self._update(
            "UPDATE deliveries SET lease_expires_at = NULL WHERE lease_expires_at IS NOT NULL", ()
        )
        return requeued
