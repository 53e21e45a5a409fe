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
from tests.store_faults import REFUSAL, refuse_updates


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_jobs_fault_in_a_batch_leaves_the_others_done_at_once(
    backend, request, tmp_path, shared_data
):
    vendor = shared_data / samples.VENDOR_ECG
    data_dir = tmp_path / "data"
    ensure_dir(data_dir / "spool")
    store = open_backend(backend, request, tmp_path)
    metrics = Metrics()
    alerted = tmp_path / "alerts"
    record = (
        "import os, sys; e = os.environ;"
        " open(sys.argv[1], 'a').write(e['ECG_GATEWAY_EVENT'] + ' ' + e['ECG_GATEWAY_DETAIL'])"
    )
    # A VLM engine batches; its model is not installed here, so the gateway measures
    # instead (engine_unavailable: fallback) - the batch is real all the same.
    vlm = VlmSettings(model=str(tmp_path / "no-model"), mode="vlm", batch_size=4)
    workers = Workers(
        store,
        Router(data_dir / "no-routes.yaml", data_dir, optional=True),
        WorkerSettings(
            reports_dir=data_dir / "reports",
            workers=1,
            engine=EngineChoice(name="vlm", vlm=vlm),
            lease_s=300.0,  # the default: what a job left leased would wait for
            retry_delay_s=0.0,
        ),
        metrics,
        alerts=AlertHook((sys.executable, "-c", record, str(alerted))),
    )
    intake = Intake(store, data_dir / "spool", metrics)
    jobs = []
    for index in range(4):
        sent = samples.copy_with_new_uid(vendor, tmp_path / f"{index}.dcm")
        assert intake.accept(samples.received(sent)).status == 0
        jobs.append(store.list_jobs(limit=1)[0].id)
    refused, *others = sorted(jobs)  # the first leased, so the first finished in the batch
    refuse_updates(store, request, "jobs", f"NEW.state = 'done' AND OLD.id = {refused}")
    workers.start()
    try:
        deadline = time.monotonic() + 60
        while {store.get_job(j).state for j in jobs} - {"done", "failed"}:
            assert time.monotonic() < deadline, [store.get_job(j).state for j in jobs]
            workers.wake()
            time.sleep(0.2)
    finally:
        workers.stop(grace_s=10)
    assert [store.get_job(j).state for j in others] == ["done"] * 3
    failed = store.get_job(refused)
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.error.startswith("gave up after 3 attempts: ") and REFUSAL in failed.error
    assert metrics.get(m.VLM_BATCHES) >= 1  # the four were leased and processed together
    assert metrics.get(m.JOBS_DONE) == 3 and metrics.get(m.JOBS_FAILED) == 1
    deadline = time.monotonic() + 10
    while not alerted.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alerted.read_text() == f"{JOB_FAILED} job {refused}"
    store.close()
