"""A fault in the real store: the database refusing to update some rows, through a
trigger, as a full disk or a broken constraint would; the store then raises StoreError
for those rows alone. On SQLite and on the tests' PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from gateway.store import SqliteStore, Store

REFUSAL = "no space left for this row"


def refuse_updates(store: Store, request: pytest.FixtureRequest, table: str, when: str) -> None:
    """From now on, updates of `table` rows where `when` holds (SQL over OLD and NEW,
    the same in both dialects) fail with REFUSAL; `request` finds the test's PostgreSQL
    database (the `postgres_url` fixture) for a PostgreSQL store."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                f"CREATE TRIGGER refuse BEFORE UPDATE ON {table} WHEN {when}"
                f" BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )
        return
    with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER refuse BEFORE UPDATE ON {table} FOR EACH ROW"
            f" WHEN ({when}) EXECUTE FUNCTION refuse()"
        )


def allow_updates(store: Store, request: pytest.FixtureRequest, table: str) -> None:
    """Undo refuse_updates: the store is well again."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute("DROP TRIGGER refuse")
        return
    with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
        conn.execute(f"DROP TRIGGER refuse ON {table}")
        conn.execute("DROP FUNCTION refuse()")
