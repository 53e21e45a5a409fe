"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary directory,
started on a free port, stopped and removed at the end of the session.

PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user
Debian's package creates (or `nobody`), through runuser. Skips when the server binaries
are missing (.ci/run installs Debian's `postgresql`).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.gateway_process import free_port

_ADMIN_USER = "ecg"


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps it off PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major, reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _major(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


class PostgresCluster:
    """One cluster; `new_database()` gives each test a fresh, empty database."""

    def __init__(self, bindir: Path, fsync: bool = False, options: str = "") -> None:
        """`options`: more server settings (`-c name=value ...`)."""
        self.bindir = bindir
        self.options = options
        self.root = Path(tempfile.mkdtemp(prefix="ecg-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.fsync = fsync
        self._user = _unprivileged_user()
        self._names = itertools.count(1)
        if self._user is not None:
            uid = pwd.getpwnam(self._user)
            os.chown(self.root, uid.pw_uid, uid.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=True, cwd=self.root)

    def init(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-U", _ADMIN_USER, "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        return self.start()

    def start(self) -> PostgresCluster:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=200 {self.options}"
        )
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.root / "log"),
                  "-o", options, "start")  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop at once (what a crash or a lost network looks like to the clients)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)

    def give(self, source: Path, mode: int = 0o600) -> Path:
        """A copy of `source` in the cluster's directory that the server may read (a
        server key must belong to the server's user, readable by it alone)."""
        target = self.root / source.name
        shutil.copy(source, target)
        target.chmod(mode)
        if self._user is not None:
            uid = pwd.getpwnam(self._user)
            os.chown(target, uid.pw_uid, uid.pw_gid)
        return target

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{_ADMIN_USER}@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _unprivileged_user() -> str | None:
    """Who runs the server: nobody needed unless this is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("running as root and no unprivileged user to run PostgreSQL")


def start_cluster(fsync: bool = False) -> PostgresCluster:
    """A running cluster, or a skip when PostgreSQL is not installed."""
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package `postgresql`)")
    return PostgresCluster(bindir, fsync=fsync).init()
