"""A FHIR POST in progress when its sender is closed (a routes reload that removed the
destination, or the gateway's stop) is cancelled at once and its delivery handed back
untried, counted in delivery_handbacks_total, instead of holding the reload or the stop
for up to the destination's timeout_s. Real parts: the sweeper with its formatting
process, the SQLite store, an HTTP FHIR server that answers late."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import delivery_support as support
import pytest
from peers import FhirTestServer
from test_file_outbox_timeout import ONLY_LOCAL_ROUTES

from gateway import metrics as m
from gateway.metrics import Metrics

_ANSWER_AFTER_S = 20.0  # the server's; well within the destination's 120 s timeout_s
_PROMPT_S = 3.0  # a reload or stop that waited for the POST would take _ANSWER_AFTER_S


def _wait_for_the_post(server: FhirTestServer, wait_s: float = 60.0) -> None:
    """Until the POST has reached the server, so the close comes during the send."""
    deadline = time.monotonic() + wait_s
    while server.requests == 0:
        assert time.monotonic() < deadline, f"no POST reached the server within {wait_s:g} s"
        time.sleep(0.05)


@pytest.mark.parametrize("closed_by", ["reload", "stop"])
def test_a_fhir_post_in_progress_is_handed_back_when_its_sender_is_closed(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, closed_by: str
) -> None:
    server = FhirTestServer(delay_s=_ANSWER_AFTER_S).start()
    routes = (
        "destinations:\n"
        f"  ehr: {{type: fhir, endpoint: '{server.base_url}', timeout_s: 120}}\n"
        "rules: []\ndefault: [ehr]\n"
    )
    data_dir, router, store = support.delivery_site(tmp_path, routes)
    metrics = Metrics()
    sweeper, _now, _alerted = support.clocked_sweeper(store, router, tmp_path, metrics=metrics)
    caplog.set_level(logging.WARNING, logger="gateway.delivery.sweeper")
    try:
        job = support.enqueue(store, router, data_dir, support.package(shared_data))
        sweep = support.sweep_in_thread(sweeper, "ehr")
        _wait_for_the_post(server)
        started = time.monotonic()
        if closed_by == "reload":
            (tmp_path / "routes.yaml").write_text(ONLY_LOCAL_ROUTES)
            assert router.reload_if_changed()
            closing = threading.Thread(target=sweeper.close_removed_senders, daemon=True)
        else:
            closing = threading.Thread(target=sweeper.stop, daemon=True)
        closing.start()
        closing.join(timeout=_PROMPT_S)
        assert not closing.is_alive(), f"the {closed_by} waits for the POST in progress"
        sweep.join(timeout=_PROMPT_S)
        assert not sweep.is_alive(), "the sweep still waits for the POST"
        assert time.monotonic() - started < _PROMPT_S
        [delivery] = [d for d in store.list_deliveries() if d.job_id == job]
        assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 0, None)
        assert metrics.get(m.DELIVERIES_HANDED_BACK) == 1
        assert any(
            "handed back untried: the sender of "
            f"{server.base_url} was closed during the send" in r.getMessage()
            for r in caplog.records
        )
    finally:
        sweeper.close()
        store.close()
        server.stop()
