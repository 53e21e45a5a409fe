"""A fault in the real store: the database refusing to update (or insert) some rows,
through a trigger, as a full disk or a broken constraint would; the store then raises
StoreError for those rows alone. Or a table gone for a while, so that reading it fails.
On SQLite and on the tests' PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from gateway.store import SqliteStore, Store

REFUSAL = "no space left for this row"


def refuse_updates(
    store: Store,
    request: pytest.FixtureRequest,
    table: str,
    when: str,
    *,
    event: str = "UPDATE",
) -> None:
    """From now on, updates (or, event="INSERT", inserts) of `table` rows where `when`
    holds (SQL over OLD and NEW, the same in both dialects; NEW alone for inserts) fail
    with REFUSAL; `request` finds the test's PostgreSQL database (the `postgres_url`
    fixture) for a PostgreSQL store."""
    trigger = _trigger(table, event)
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} WHEN {when}"
                f" BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )
        return
    with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
        conn.execute(
            f"CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} FOR EACH ROW"
            f" WHEN ({when}) EXECUTE FUNCTION refuse()"
        )


def allow_updates(
    store: Store, request: pytest.FixtureRequest, table: str, *, event: str = "UPDATE"
) -> None:
    """Undo refuse_updates: the store is well again."""
    trigger = _trigger(table, event)
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(f"DROP TRIGGER {trigger}")
        return
    with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
        conn.execute(f"DROP TRIGGER {trigger} ON {table}")


def rename_table(store: Store, request: pytest.FixtureRequest, table: str, to: str) -> None:
    """Rename `table` (the same statement in both dialects): renamed away, every query of
    it fails (StoreError); renamed back, the store is well again."""
    statement = f"ALTER TABLE {table} RENAME TO {to}"
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(statement)
        return
    with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
        conn.execute(statement)


def _trigger(table: str, event: str) -> str:
    """One trigger per table and statement (SQLite's trigger names are per database)."""
    return f"refuse_{table}_{event.lower()}"
