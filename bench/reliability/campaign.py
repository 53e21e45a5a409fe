"""The campaign's phases against one real gateway process (restarted after each SIGKILL),
with the strict FHIR and MLLP peers as its destinations:

1. malformed corpus, sent by `senders` concurrent storescu / pynetdicom senders;
2. empty datasets, on their own: sent as an empty data fragment, and announced by the
   C-STORE command but never sent (answered after the gateway's `dataset_wait_s`);
3. SIGKILLs of the gateway or a helper process at random moments while `senders`
   senders send valid ECGs (each resent until answered, as a cart does);
4. destination faults, one at a time, while valid ECGs are sent;
then everything is left to finish, the gateway is stopped with SIGTERM, and each
object's fate is read from the store and the destinations (audit.py).
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from reliability import audit, corpus
from reliability.faults import FAULTS, Destinations, Supervisor, wait_settled
from reliability.senders import (
    Sent,
    send_all,
    send_announced_without_data,
    send_pynetdicom,
    send_until_answered,
)
from tests.gateway_process import GatewayProcess


@dataclass(frozen=True)
class Sizes:
    malformed: int = 320
    empty: int = 2
    kills: int = 20
    faults: tuple[str, ...] = tuple(FAULTS)
    per_fault: int = 4
    senders: int = 4
    seed: int = 26
    settle_s: float = 300.0


@dataclass
class Result:
    rows: list[audit.Row]
    crashes: list[str]
    phi: list[str]
    kills: dict[str, int]
    settled: bool
    seconds: float
    empty_seconds: float = 0.0
    log_tracebacks: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> audit.Row:
        total = audit.Row("total")
        for row in self.rows:
            for column in audit.COUNTS:
                setattr(total, column, getattr(total, column) + getattr(row, column))
        return total


def run_campaign(work: Path, data: Path, sizes: Sizes) -> Result:
    """Run every phase; the gateway and the peers are stopped whatever happens."""
    warnings.simplefilter("ignore")  # pydicom warns about every value it is asked to write
    started = time.monotonic()
    rng = random.Random(sizes.seed)
    bases = corpus.templates(data)
    destinations = Destinations().start()
    gateway = GatewayProcess(work / "data", config=_config(work, destinations))
    supervisor = Supervisor(gateway.start(), rng)
    phases: dict[str, list[Sent]] = {}
    try:
        cases = corpus.malformed(work / "malformed", bases, sizes.malformed, sizes.seed)
        phases["malformed corpus"] = send_all(cases, gateway.port, sizes.senders)
        empty_started = time.monotonic()
        empties = corpus.empty_datasets(work / "empty", sizes.empty)
        phases["empty datasets"] = [
            send_pynetdicom(case, gateway.port, timeout_s=5) for case in empties
        ] + [send_announced_without_data(case, gateway.port, timeout_s=10) for case in empties]
        empty_seconds = time.monotonic() - empty_started
        kill_name = f"{sizes.kills} x SIGKILL under {sizes.senders} senders"
        phases[kill_name] = _kill_phase(supervisor, bases, work / "load", sizes)
        for name in sizes.faults:
            phases[f"fault: {name}"] = _fault(name, supervisor, destinations, bases, work, sizes)
        settled = wait_settled(supervisor, sizes.settle_s)
        supervisor.stop()
    finally:
        gateway.stop_if_running()
    evidence = audit.gather(gateway.data_dir, destinations)
    destinations.stop()
    rows = [audit.tally(name, sent, evidence) for name, sent in phases.items()]
    texts = {**audit.log_texts(_logs(work)), **audit.cli_outputs(gateway.data_dir)}
    return Result(
        rows=rows,
        crashes=supervisor.crashes,
        phi=audit.phi_findings(texts),
        kills=supervisor.kills,
        settled=settled,
        seconds=time.monotonic() - started,
        empty_seconds=empty_seconds,
        log_tracebacks=gateway.logs().count("Traceback"),
    )


def _config(work: Path, destinations: Destinations) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    routes = work / "routes.yaml"
    routes.write_text(destinations.routes())
    config = work / "gateway.yaml"
    # an announced dataset that never comes is answered after 2 s (default 10)
    config.write_text(f"routes: {routes}\nworkers: 2\ndicom:\n  dataset_wait_s: 2\n")
    return config


def _logs(work: Path) -> list[Path]:
    """Every log the gateway wrote (all its runs append to one file) and its counters."""
    return sorted(work.glob("*.log")) + sorted(work.glob("data/metrics.json"))


def _kill_phase(supervisor: Supervisor, bases: list, directory: Path, sizes: Sizes) -> list[Sent]:
    """Senders keep sending valid ECGs while the gateway or a helper is killed at random
    moments; a killed gateway is started again at once."""
    stop = threading.Event()
    results: list[Sent] = []
    lock = threading.Lock()
    port = supervisor.gateway.port

    def sender(number: int) -> None:
        index = 0
        while not stop.is_set():
            case = corpus.valid_ecg(directory, bases, index + number, f"s{number}-{index:04d}")
            sent = send_until_answered(case, port)
            with lock:
                results.append(sent)
            index += 1
            time.sleep(0.3)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(sizes.senders)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(sizes.kills):
            time.sleep(supervisor.rng.uniform(0.2, 2.0))
            supervisor.kill_random()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return results


def _fault(
    name: str,
    supervisor: Supervisor,
    destinations: Destinations,
    bases: list,
    work: Path,
    sizes: Sizes,
) -> list[Sent]:
    """The fault lasts while `per_fault` ECGs are sent and two delivery sweeps run."""
    begin, end = FAULTS[name]
    wait_settled(supervisor, 120)  # so that the fault meets this phase's own reports
    begin(destinations)
    directory = work / "faults"
    cases = [corpus.valid_ecg(directory, bases, i, f"{name}-{i}") for i in range(sizes.per_fault)]
    try:
        sent = send_all(cases, supervisor.gateway.port, sizes.senders, retry=True)
        time.sleep(4.5)
    finally:
        end(destinations)
    supervisor.check()
    return sent
