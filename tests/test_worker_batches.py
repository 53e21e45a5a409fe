"""A batch of jobs (a VLM engine interprets several at once) is finished job by job: a
fault finishing one is charged to that one alone (retried, then failed loudly), and every
other job of the batch is done at once, not left leased until its lease runs out.

Real parts throughout: objects through the real Intake, the real store on each backend,
the worker thread with its helper process, the gateway's own fallback from a VLM that
is not installed to the measurement engine. The fault is the database refusing one
job's completion (a trigger), as a full disk or a constraint would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from test_store import open_backend

from gateway import metrics as m
from gateway.alerts import JOB_FAILED, AlertHook
from gateway.durable import ensure_dir
from gateway.intake.accept import Intake
from gateway.metrics import Metrics
from gateway.processing.workers import Workers, WorkerSettings
from gateway.routing import Router
from model.engine import EngineChoice
from model.vlm.settings import VlmSettings
from tests import dicom_samples as samples
from tests.store_faults import REFUSAL, allow_updates, refuse_updates

ALERT_RECORDER = (
    "import os, sys; e = os.environ;"
    " open(sys.argv[1], 'a').write(e['ECG_GATEWAY_EVENT'] + ' ' + e['ECG_GATEWAY_DETAIL'])"
)


class BatchingSite:
    """Intake, the store of `backend` and one started worker whose engine batches four
    jobs: a VLM engine, its model not installed here, so the gateway measures instead
    (engine_unavailable: fallback); the batch is real all the same."""

    def __init__(self, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        ensure_dir(data_dir / "spool")
        self.store = open_backend(backend, request, tmp_path)
        self.metrics = Metrics()
        self.alerted = tmp_path / "alerts"
        vlm = VlmSettings(model=str(tmp_path / "no-model"), mode="vlm", batch_size=4)
        self.workers = Workers(
            self.store,
            Router(data_dir / "no-routes.yaml", data_dir, optional=True),
            WorkerSettings(
                reports_dir=data_dir / "reports",
                workers=1,
                engine=EngineChoice(name="vlm", vlm=vlm),
                lease_s=300.0,  # the default: what a job left leased would wait for
                retry_delay_s=0.0,
            ),
            self.metrics,
            alerts=AlertHook((sys.executable, "-c", ALERT_RECORDER, str(self.alerted))),
        )
        self.intake = Intake(self.store, data_dir / "spool", self.metrics)

    def receive(self, ecg: Path, folder: Path, count: int) -> list[int]:
        """`count` copies of `ecg` under new UIDs, received; their job ids, oldest first."""
        for index in range(count):
            sent = samples.copy_with_new_uid(ecg, folder / f"{index}.dcm")
            assert self.intake.accept(samples.received(sent)).status == 0
        return sorted(job.id for job in self.store.list_jobs())

    def wait_until(self, jobs: list[int], states: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while {self.store.get_job(j).state for j in jobs} - states:
            assert time.monotonic() < deadline, [self.store.get_job(j).state for j in jobs]
            self.workers.wake()
            time.sleep(0.2)


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path):
    site = BatchingSite(request.param, request, tmp_path)
    yield site
    site.workers.stop(grace_s=10)
    site.store.close()


def test_one_jobs_fault_in_a_batch_leaves_the_others_done_at_once(
    site, request, tmp_path, shared_data
):
    store, metrics = site.store, site.metrics
    jobs = site.receive(shared_data / samples.VENDOR_ECG, tmp_path, 4)
    refused, *others = jobs  # the first leased, so the first finished in the batch
    refuse_updates(store, request, "jobs", f"NEW.state = 'done' AND OLD.id = {refused}")
    site.workers.start()
    site.wait_until(jobs, {"done", "failed"}, timeout_s=60)
    assert [store.get_job(j).state for j in others] == ["done"] * 3
    failed = store.get_job(refused)
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.error.startswith("gave up after 3 attempts: ") and REFUSAL in failed.error
    assert metrics.get(m.VLM_BATCHES) >= 1  # the four were leased and processed together
    assert metrics.get(m.JOBS_DONE) == 3 and metrics.get(m.JOBS_FAILED) == 1
    deadline = time.monotonic() + 10
    while not site.alerted.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert site.alerted.read_text() == f"{JOB_FAILED} job {refused}"


def test_a_store_error_while_gathering_a_batch_leaves_no_job_in_hand_waiting(
    site, request, tmp_path, shared_data
):
    """The store fails the second lease of a batch: the job already leased is processed
    now, not left leased until its lease runs out."""
    store = site.store
    first, unleasable, last = site.receive(shared_data / samples.VENDOR_ECG, tmp_path, 3)
    refuse_updates(store, request, "jobs", f"NEW.state = 'leased' AND OLD.id = {unleasable}")
    site.workers.start()
    site.wait_until([first], {"done"}, timeout_s=60)
    assert store.get_job(unleasable).state == "queued"  # nothing is lost meanwhile
    allow_updates(store, request, "jobs")  # the store is well again
    site.wait_until([unleasable, last], {"done"}, timeout_s=60)
