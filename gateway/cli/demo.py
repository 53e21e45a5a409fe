"""`make demo`: the gateway's whole job, end to end, the way a user runs it.

Starts `ecg-gateway serve` on the shipped config with a fresh data directory, sends the
sample ECGs (gateway/cli/demo_samples.py) with `ecg-gateway send`, waits until every report
is in the outbox, prints a summary per ECG and stops the gateway with SIGTERM. Both
commands are real processes, so the demo exercises what a hospital would run. The output
stays under --out (default out/demo) so the PNG, PDF, FHIR and HL7 files can be opened.
The summary shows measurements and reports only, never patient data.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import Verification

from gateway.cli.demo_samples import DemoSample, prepare_samples, shared_data_dir
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.delivery.base import safe_file_stem
from gateway.store import Delivery, Job, SqliteStore, StoreError
from model.errors import EcgDecodeError
from model.report import MEASUREMENT_KEYS, Report
from model.report_text import technical_notes

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "config" / "gateway.yaml"
_MARKER = ".ecg-gateway-demo"  # a folder with this file may be emptied by the next run
_POLL_S = 0.5
_STOP_TIMEOUT_S = 60.0
_LOG_TAIL_CHARS = 2000
_OUTBOX_SUFFIXES = (".fhir.json", ".hl7", ".png", ".jpg", ".pdf")  # gateway/delivery/outbox.py


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve, send the sample ECGs, print their reports, stop")
    p.add_argument(
        "--out",
        default="out/demo",
        help="data directory and outbox of the demo "
        "(default out/demo; a previous demo's output there is replaced)",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="sample data (default $ECG_GATEWAY_DATA or "
        "../shared/data; without it a synthetic ECG)",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the reports (default 120)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_demo(Path(args.out), data_dir=args.data, timeout_s=args.timeout)


class DemoError(Exception):
    """A step of the demo failed; the message says which step and why."""


@dataclass(frozen=True)
class Outcome:
    """What became of one sample: refused at C-STORE, or its job and deliveries."""

    sample: DemoSample
    send_error: str | None = None
    job: Job | None = None
    deliveries: tuple[Delivery, ...] = ()

    @property
    def finished(self) -> bool:
        if self.send_error is not None or (self.job is not None and self.job.state == "failed"):
            return True
        if self.job is None or self.job.state != "done":
            return False
        return all(d.state in ("sent", "dead") for d in self.deliveries)

    @property
    def ok(self) -> bool:
        return (
            self.finished
            and self.send_error is None
            and self.job.state == "done"
            and all(d.state == "sent" for d in self.deliveries)
        )


def run_demo(
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    config: Path = SHIPPED_CONFIG,
    timeout_s: float = 120.0,
) -> int:
    """The demo; 0 when every ECG reached the outbox and the gateway stopped cleanly."""
    try:
        workspace = fresh_workspace(out_dir)
        samples = _prepare(data_dir or shared_data_dir(), workspace / "samples")
        return run_samples(samples, workspace, config, timeout_s)
    except (DemoError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _prepare(data_dir: Path, samples_dir: Path) -> list[DemoSample]:
    try:
        samples = prepare_samples(data_dir, samples_dir)
    except (EcgDecodeError, ValueError) as exc:
        raise DemoError(f"cannot prepare the sample ECGs from {data_dir}: {exc}") from None
    source = data_dir if data_dir.is_dir() else f"a synthetic ECG (no sample data at {data_dir})"
    print(f"{len(samples)} sample ECG(s) from {source} written as DICOM to {samples_dir}")
    return samples


def fresh_workspace(out_dir: Path) -> Path:
    """An empty `out_dir`; a previous demo's output there is removed, anything else is kept."""
    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / _MARKER).exists():
            raise DemoError(f"{out_dir} is not empty and not a demo folder; choose another --out")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text("output of `ecg-gateway demo`; the next run replaces it\n")
    return out_dir


def run_samples(
    samples: list[DemoSample], workspace: Path, config_path: Path, timeout_s: float
) -> int:
    """Serve, send, wait, summarise, stop; the gateway is stopped whatever happens."""
    config = load_config(config_path).with_overrides(data_dir=workspace / "data")
    gateway = DemoGateway(config_path, config.data_dir, workspace / "gateway.log")
    gateway.start()
    try:
        refused = send_samples(samples, gateway.port)
        outcomes = wait_for_reports(config, samples, refused, timeout_s, gateway)
        print_summary(outcomes, config.outbox_dir)
    finally:
        exit_code = gateway.stop()
    print(f"outbox: {config.outbox_dir} (files named <SOP Instance UID>.<type>)")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        print(
            f"error: {len(failed)} of {len(outcomes)} ECG(s) did not reach the outbox: "
            + ", ".join(o.sample.name for o in failed),
            file=sys.stderr,
        )
    if exit_code != 0:
        print(
            f"error: the gateway exited with {exit_code} after SIGTERM; see {gateway.log_path}",
            file=sys.stderr,
        )
    return 0 if not failed and exit_code == 0 else 1


class DemoGateway:
    """`ecg-gateway serve` as a child process on a free port.

    It runs in the repository root, the directory the shipped config's relative paths
    (config/routes.yaml) are written for, whatever directory the demo is started from.
    """

    def __init__(self, config_path: Path, data_dir: Path, log_path: Path):
        self.config_path = config_path.resolve()
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        # Loopback only: the shipped config listens on every interface, the demo need not.
        return [
            "serve",
            "-c",
            str(self.config_path),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--admin-port",  # any free port: 8090 may be another gateway's
            "0",
        ]

    def start(self, timeout_s: float = 60.0) -> None:
        print(f"$ ecg-gateway {' '.join(self.command())}")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                _cli(self.command()), cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_accepting(timeout_s)
        except BaseException:  # Ctrl-C included: never leave a gateway running behind
            self._kill()
            raise
        print(f"gateway accepts associations on port {self.port} (C-ECHO ok)")

    def _wait_until_accepting(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise DemoError(
                    f"the gateway exited with {code} before accepting associations; "
                    f"its log ({self.log_path}) ends:\n{self.log_tail()}"
                )
            if echo("127.0.0.1", self.port):
                return
            time.sleep(_POLL_S)
        raise DemoError(
            f"the gateway did not answer C-ECHO on port {self.port} within {timeout_s:g} s; "
            f"its log ({self.log_path}) ends:\n{self.log_tail()}"
        )

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self) -> int:
        """SIGTERM, as an init system stops it; its exit code (killed if it hangs)."""
        if self.process.poll() is not None:
            print(
                f"gateway had already exited with {self.process.returncode}; "
                f"its log: {self.log_path}"
            )
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill()
            print(
                f"error: the gateway did not stop within {_STOP_TIMEOUT_S:g} s of SIGTERM; killed",
                file=sys.stderr,
            )
            return self.process.returncode
        print(f"gateway stopped by SIGTERM, exit code {code}; its log: {self.log_path}")
        return code

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-_LOG_TAIL_CHARS:]


def _cli(arguments: list[str]) -> list[str]:
    """The `ecg-gateway` command of this installation."""
    return [sys.executable, "-m", "gateway.cli", *arguments]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """True when the peer accepts an association and answers C-ECHO with success."""
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # refused is expected here
    ae = AE(ae_title="ECGDEMO")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0x0000
    finally:
        assoc.release()


def send_samples(samples: list[DemoSample], port: int) -> dict[Path, str]:
    """Send with `ecg-gateway send`; the files it could not store, with its line for each."""
    arguments = ["send", "--port", str(port), *(str(s.path) for s in samples)]
    print(f"$ ecg-gateway send --port {port} {' '.join(s.path.name for s in samples)}")
    try:
        done = subprocess.run(
            _cli(arguments), cwd=REPO, capture_output=True, text=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        raise DemoError("`ecg-gateway send` did not finish within 300 s") from None
    lines = done.stdout.splitlines()
    for line in lines:
        print(f"    {line}")
    refused = {}
    for sample in samples:
        line = next((text for text in lines if str(sample.path) in text), None)
        if line is None:
            refused[sample.path] = f"no result from `ecg-gateway send`: {done.stderr.strip()}"
        elif not line.startswith("OK"):
            refused[sample.path] = line
    return refused


def wait_for_reports(
    config: GatewayConfig,
    samples: list[DemoSample],
    refused: dict[Path, str],
    timeout_s: float,
    gateway: DemoGateway,
) -> list[Outcome]:
    """Poll the store until every job is done or failed and every delivery sent or dead."""
    deadline = time.monotonic() + timeout_s
    outcomes = [Outcome(sample) for sample in samples]
    store_error = ""
    while True:
        try:
            outcomes = read_outcomes(config.store_path, samples, refused)
            store_error = ""
        except StoreError as exc:  # busy while the gateway writes: read again next time
            store_error = f"\n  (the store could not be read: {exc})"
        if not store_error and all(o.finished for o in outcomes):
            return outcomes
        if gateway.exited() is not None:
            raise DemoError(
                f"the gateway exited with {gateway.exited()} while processing; "
                f"its log ends:\n{gateway.log_tail()}"
            )
        if time.monotonic() >= deadline:
            waiting = "\n".join(
                f"  {o.sample.name}: {_progress(o)}" for o in outcomes if not o.finished
            )
            raise DemoError(
                f"reports not in the outbox after {timeout_s:g} s:\n{waiting}"
                f"{store_error}\nsee {gateway.log_path}"
            )
        time.sleep(_POLL_S)


def read_outcomes(
    store_path: Path, samples: list[DemoSample], refused: dict[Path, str]
) -> list[Outcome]:
    if not store_path.exists():
        return [Outcome(s, send_error=refused.get(s.path)) for s in samples]
    store = SqliteStore(store_path)
    try:
        deliveries = store.list_deliveries(limit=100_000)
        outcomes = []
        for sample in samples:
            if sample.path in refused:
                outcomes.append(Outcome(sample, send_error=refused[sample.path]))
                continue
            jobs = store.jobs_for_uid(sample.sop_instance_uid)
            job = max(jobs, key=lambda j: j.id) if jobs else None
            mine = tuple(d for d in deliveries if job is not None and d.job_id == job.id)
            outcomes.append(Outcome(sample, job=job, deliveries=mine))
        return outcomes
    finally:
        store.close()


def _progress(outcome: Outcome) -> str:
    if outcome.job is None:
        return "not received yet"
    if outcome.job.state != "done":
        return f"job {outcome.job.state}"
    return ", ".join(
        f"delivery to {d.destination} {d.state}" + (f" ({d.last_error})" if d.last_error else "")
        for d in outcome.deliveries
    )


def print_summary(outcomes: list[Outcome], outbox: Path) -> None:
    for index, outcome in enumerate(outcomes, start=1):
        print()
        print(f"[{index}] {outcome.sample.name}")
        print(f"    SOP Instance UID {outcome.sample.sop_instance_uid}")
        for line in summary_lines(outcome, outbox):
            print(f"    {line}")
    print()


def summary_lines(outcome: Outcome, outbox: Path) -> list[str]:
    """Measurements, impression, deliveries and outbox files; no patient data."""
    if outcome.send_error is not None:
        return [f"REFUSED at C-STORE: {outcome.send_error}"]
    if outcome.job.state == "failed":
        return [f"FAILED: {outcome.job.error}"]
    report = Report.model_validate_json((Path(outcome.job.report_dir) / "report.json").read_text())
    lines = [measurement_line(report), f"Impression: {report.impression}"]
    if report.warnings:
        lines.append(technical_notes(report.warnings))
    for delivery in outcome.deliveries:
        if delivery.state != "sent":
            lines.append(
                f"delivery to {delivery.destination} {delivery.state}: {delivery.last_error}"
            )
    stem = safe_file_stem(outcome.sample.sop_instance_uid)
    files = outbox_files(outbox, outcome.sample.sop_instance_uid)
    listed = ", ".join(f"{p.name[len(stem) + 1 :]} {_size(p)}" for p in files)
    lines.append(f"Outbox: {listed or 'nothing'}")
    return lines


def measurement_line(report: Report) -> str:
    m = report.measurements
    if all(getattr(m, key) is None for key in MEASUREMENT_KEYS):
        reason = report.null_reasons.get("heart_rate_bpm", "no reason recorded")
        return f"Measurements: none ({reason})"

    def shown(value: float | None, unit: str) -> str:
        return "-" if value is None else f"{value:.0f}{unit}"

    return (
        f"HR {shown(m.heart_rate_bpm, '/min')}  PR {shown(m.pr_ms, ' ms')}  "
        f"QRS {shown(m.qrs_ms, ' ms')}  QT {shown(m.qt_ms, ' ms')}  "
        f"QTc {shown(m.qtc_bazett_ms, ' ms')}  axis {shown(m.qrs_axis_deg, '°')}"
    )


def outbox_files(outbox: Path, sop_instance_uid: str) -> list[Path]:
    stem = safe_file_stem(sop_instance_uid)
    candidates = (outbox / f"{stem}{suffix}" for suffix in _OUTBOX_SUFFIXES)
    return [path for path in candidates if path.exists()]


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} B"
