"""A real `ecg-gateway serve` with its order listener on, python-hl7's MLLP client as the
EHR, and `ecg-gateway orders list|show|cancel` on the same data directory: the
listener starts and stops with the server, the CLI shows and cancels, and the audit
trail says who cancelled."""

from __future__ import annotations

import getpass
import subprocess
import sys

import pytest

from tests.gateway_process import REPO, GatewayProcess, free_port
from tests.hl7_orders_support import PATIENT_ID, PATIENT_NAME, ack_code, omg, orm, send


def _cli(gateway: GatewayProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "orders", *args, "--data-dir", str(gateway.data_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


@pytest.fixture
def gateway(tmp_path):
    port = free_port()
    process = GatewayProcess(
        tmp_path / "data",
        extra_config=f"orders:\n  enabled: true\n  port: {port}\n  allowed_facilities: [NORTH]\n",
    )
    process.orders_port = port
    process.start()
    yield process
    process.stop_if_running()


def test_serve_takes_orders_and_the_cli_lists_shows_and_cancels(gateway):
    assert ack_code(send(gateway.orders_port, orm(placer="P1"))) == "AA"
    assert ack_code(send(gateway.orders_port, omg(placer="P2"))) == "AA"
    assert f"HL7 order listener on 127.0.0.1:{gateway.orders_port}" in gateway.logs()

    listing = _cli(gateway, "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert "P2^HIS" in lines[1] and "P1^HIS" in lines[2] and "stat" in lines[2]
    assert PATIENT_ID not in listing.stdout and "Doe" not in listing.stdout

    shown = _cli(gateway, "show", "--placer", "P1^HIS")
    assert shown.returncode == 0, shown.stderr
    assert PATIENT_NAME in shown.stdout and "ACCP1" in shown.stdout
    assert "scheduled" in shown.stdout.splitlines()[0]

    order_id = shown.stdout.split(":")[0].split()[-1]
    cancelled = _cli(gateway, "cancel", order_id)
    assert cancelled.returncode == 0, cancelled.stderr
    store = gateway.open_store()
    try:
        assert store.get_order(int(order_id)).state == "cancelled"
    finally:
        store.close()
    again = _cli(gateway, "cancel", order_id)
    assert again.returncode == 1 and "is cancelled" in again.stdout

    trail = (gateway.data_dir / "audit" / "audit-trail.jsonl").read_text()
    assert "order P1: cancelled by operator" in trail and getpass.getuser() in trail
    assert trail.count('originalText=\\"Order Record\\"') == 3  # two new, one cancel

    assert gateway.terminate() == 0
    assert PATIENT_ID not in gateway.logs() and "Doe" not in gateway.logs()
