"""Shared test fixtures: where the real ECG data lives, and skipping only when it is absent."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder (../shared/data, or $ECG_GATEWAY_DATA); skips if truly absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real ECG data not found at {SHARED_DATA} (set ECG_GATEWAY_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weight SmolVLM-shaped model (tests/vlm_support.py); it writes nonsense."""
    from tests.vlm_support import tiny_model_dir  # torch: only for the tests that use it

    return tiny_model_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def taught(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model taught one report (tests/vlm_support.py): its text is read."""
    from tests.vlm_support import taught_model_dir

    return taught_model_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL server for the session (tests/postgres.py); skips without one."""
    from tests.postgres import start_cluster

    cluster = start_cluster()
    yield cluster
    cluster.remove()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return postgres_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_each_backend(request, tmp_path):
    """A fresh store on each backend in turn: SQLite in `tmp_path`, then a database on the
    session's PostgreSQL server (skipped without one)."""
    from tests.test_store import open_backend

    store = open_backend(request.param, request, tmp_path)
    yield store
    store.close()


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch):
    """Names under `.slow-dns.test` answered only when the test says so (dns_support)."""
    from dns_support import SlowDns

    dns = SlowDns()
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyaddr", dns.gethostbyaddr)
    yield dns
    dns.answer(0)  # the lookups left waiting end, so the next test starts afresh
