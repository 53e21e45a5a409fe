"""A real syslog collector for the audit tests: Debian's rsyslogd, started by the test
with its own config (imtcp on a given port, optionally TLS through the ossl driver)
and writing what it parsed of each RFC 5424 message, one JSON object a line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.peers import Pki

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"

_TEMPLATE = """
template(name="fields" type="list" option.jsonf="on") {
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
ruleset(name="audit") { action(type="omfile" file="%(out)s" template="fields") }
"""


def rsyslog_available(tls: bool = False) -> bool:
    if not os.path.exists(RSYSLOGD):
        return False
    return not tls or any(Path("/usr/lib").glob("*/rsyslog/lmnsd_ossl.so"))


class RsyslogCollector:
    """rsyslogd in the foreground (-n) as a child of the test; `stop` ends it."""

    def __init__(self, directory: Path, port: int, pki: Pki | None = None) -> None:
        self.directory = directory
        self.port = port
        self.pki = pki
        self.out = directory / "received.jsonl"
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def _config(self) -> str:
        work = self.directory / "work"
        work.mkdir(exist_ok=True)
        if self.pki is None:
            head = f'global(workDirectory="{work}" maxMessageSize="64k")\nmodule(load="imtcp")\n'
        else:
            head = (
                f'global(workDirectory="{work}" maxMessageSize="64k"\n'
                f'  DefaultNetstreamDriverCAFile="{self.pki.ca}"\n'
                f'  DefaultNetstreamDriverCertFile="{self.pki.server_cert}"\n'
                f'  DefaultNetstreamDriverKeyFile="{self.pki.server_key}")\n'
                'module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1"\n'
                '  StreamDriver.AuthMode="x509/certvalid")\n'
            )
        listen = f'input(type="imtcp" port="{self.port}" ruleset="audit")\n'
        return head + listen + _TEMPLATE % {"out": self.out}

    def start(self) -> RsyslogCollector:
        config = self.directory / "rsyslog.conf"
        config.write_text(self._config())
        log = open(self.directory / "rsyslogd.log", "ab")  # noqa: SIM115 - closed in stop
        self._log = log
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(config), "-i", str(self.directory / "rsyslogd.pid")],
            stdout=log,
            stderr=log,
        )
        self._wait_until_listening()
        return self

    def _wait_until_listening(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rsyslogd exited: {self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"rsyslogd did not listen on {self.port}: {self.logs()}")

    def logs(self) -> str:
        path = self.directory / "rsyslogd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def received(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def wait_for(self, count: int, timeout_s: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            records = self.received()
            if len(records) >= count:
                return records
            time.sleep(0.2)
        raise TimeoutError(f"{len(self.received())} of {count} records received\n{self.logs()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
