"""`ecg-gateway serve` as a real process on a free port with a temp data directory."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from gateway.store import Delivery, Job, SqliteStore, Store

REPO = Path(__file__).resolve().parent.parent


# Below Linux's ephemeral range (32768-60999): a port the kernel hands out as free is
# also what it hands the next outgoing connection, which took one such port before the
# gateway under test bound it (CI: "address already in use" on the orders port).
TEST_PORTS = range(20000, 32000)


def free_port() -> int:
    """A port nobody listens on now, drawn outside the ephemeral range."""
    for _ in range(200):
        port = random.choice(TEST_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {TEST_PORTS}")


class GatewayProcess:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        config: Path | None = None,
        store_url: str | None = None,
        extra_config: str = "",
    ):
        """`store_url`: a PostgreSQL database (else SQLite in the data directory);
        `extra_config`: gateway.yaml lines added to the defaults (without `config`)."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.config = config
        self.store_url = store_url
        self.extra_config = extra_config
        self.log = data_dir.parent / f"{data_dir.name}-server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        command = [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
        ]
        config = self._free_admin_port(self.config or self._routes_optional_config())
        command += ["-c", str(config)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as log:
            # cwd: a directory without config/routes.yaml, so reports go to the outbox
            self.process = subprocess.Popen(
                command, cwd=self.data_dir.parent, env=env, stdout=log, stderr=log
            )
        self._wait_until_listening(timeout_s)
        return self

    def _routes_optional_config(self) -> Path:
        """The defaults, but allowed to start without a routes file (see start's cwd)."""
        path = self.data_dir.parent / f"{self.data_dir.name}-gateway.yaml"
        store = f"store: {self.store_url}\n" if self.store_url else ""
        path.write_text(f"routes_optional: true\n{store}{self.extra_config}")
        return path

    def _free_admin_port(self, config: Path) -> Path:
        """The config with the admin endpoint on a free port unless it names one: tests
        (and sessions) run many gateways on one machine, the default 8090 is taken."""
        data = yaml.safe_load(config.read_text()) or {}
        admin = data.setdefault("admin", {})
        if "port" in admin:
            return config
        admin["port"] = 0
        path = self.data_dir.parent / f"{self.data_dir.name}-gateway-admin.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    @property
    def admin_url(self) -> str:
        """http(s)://host:port of the admin endpoint, as the gateway's log says."""
        found = re.findall(r"admin endpoint on (\S+):(\d+) \((https?)\)", self.logs())
        if not found:
            raise RuntimeError(f"no admin endpoint in the log:\n{self.logs()[-2000:]}")
        host, port, scheme = found[-1]  # this run's, after a restart
        return f"{scheme}://{host}:{port}"

    def _wait_until_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.logs()}")
            echo = subprocess.run(
                ["echoscu", "127.0.0.1", str(self.port)], capture_output=True, check=False
            )
            if echo.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"gateway did not start:\n{self.logs()}")

    def terminate(self, timeout_s: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill_hard(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def children(self) -> list[int]:
        """The server's child processes (its worker pool), while it runs."""
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]

    def stop_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill_hard()

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_until_processed(self, expected_jobs: int, timeout_s: float = 120.0) -> dict[str, int]:
        """Wait until `expected_jobs` jobs exist and none is queued or leased."""
        deadline = time.monotonic() + timeout_s
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = self.job_counts()
            finished = counts.get("done", 0) + counts.get("failed", 0)
            if finished >= expected_jobs and not counts.get("queued") and not counts.get("leased"):
                return counts
            time.sleep(0.2)
        raise TimeoutError(f"jobs not processed: {counts}\n{self.logs()[-3000:]}")

    def open_store(self) -> Store:
        """This gateway's store, opened as the CLI would open it."""
        if self.store_url is None:
            return SqliteStore(self.data_dir / "gateway.sqlite3")
        from gateway.store.postgres import PostgresStore

        return PostgresStore(self.store_url, self.data_dir.parent / f"{self.data_dir.name}-cli")

    def store_contents(self) -> tuple[list[Job], list[Delivery]]:
        """Every job and delivery in this gateway's store, as the CLI would read them."""
        store = self.open_store()
        try:
            return store.list_jobs(limit=100_000), store.list_deliveries(limit=100_000)
        finally:
            store.close()

    def job_counts(self) -> dict[str, int]:
        store = self.open_store()
        try:
            return store.count_jobs()
        finally:
            store.close()
