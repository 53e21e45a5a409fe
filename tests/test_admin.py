"""The admin endpoint: /healthz, /readyz and /metrics of a real gateway fed by dcmtk's
storescu; the token and TLS asked beyond localhost; readiness failing for each reason."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.admin.http import ADMIN_TLS_FAILED, AdminApp, read_token, start_admin
from gateway.admin.readiness import ENGINE_UNAVAILABLE, EngineState, Readiness
from gateway.config import AdminConfig, ConfigError, load_config
from gateway.metrics import ASSOCIATIONS_ACCEPTED, JOBS_DONE, Metrics
from gateway.server import engine_choice, engine_state
from gateway.store import SqliteStore
from tests import dicom_samples as samples
from tests.gateway_process import GatewayProcess
from tests.peers import make_pki
from tests.test_scp import assert_plain_then_no_certificate_logged, settled_rejections

needs_dcmtk = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")


def samples_of(metrics_text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus exposition, parsed by prometheus_client's parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


@needs_dcmtk
def test_a_running_gateway_reports_health_readiness_and_metrics(tmp_path, shared_data):
    config = tmp_path / "gateway.yaml"
    config.write_text("routes_optional: true\nallowed_calling_aes: [CART1, ECHOSCU]\n")
    files = [
        samples.copy_with_new_uid(shared_data / samples.VENDOR_ECG, tmp_path / f"e{i}.dcm")
        for i in range(3)
    ]
    gateway = GatewayProcess(tmp_path / "data", config=config).start()
    try:
        accepted = ("ecg_gateway_associations_total", (("outcome", "accepted"),))
        before = samples_of(httpx.get(f"{gateway.admin_url}/metrics").text)[accepted]
        sent = subprocess.run(
            ["storescu", "-aet", "CART1", "127.0.0.1", str(gateway.port), *map(str, files)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        refused = subprocess.run(
            ["storescu", "-aet", "INTRUDER", "127.0.0.1", str(gateway.port), str(files[0])],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode != 0
        gateway.wait_until_processed(3)
        url = gateway.admin_url
        assert url.startswith("http://127.0.0.1:")

        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 200 and health.text == "ok\n"
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["ready"] is True
        assert set(body["checks"]) == {"store", "spool", "scp", "engine", "draining"}
        assert body["checks"]["engine"] == {"ok": True, "name": "measure", "state": "ready"}
        assert body["destinations"]["outbox"]["state"] == "ok"

        values = _wait_for_deliveries(url, 3)
        waveform = (("sop_class", "GeneralECGWaveformStorage"), ("status", "0x0000"))
        assert values[("ecg_gateway_objects_received_total", waveform)] == 3
        assert values[accepted] == before + 1  # the echoes that saw it start came before
        assert values[("ecg_gateway_associations_total", (("outcome", "rejected"),))] == 1
        assert (
            values[("ecg_gateway_rejections_total", (("reason", "calling-ae-not-allowed"),))] == 1
        )
        assert values[("ecg_gateway_jobs", (("state", "done"),))] == 3
        assert values[("ecg_gateway_queue_depth", ())] == 0
        assert values[("ecg_gateway_processing_seconds_count", ())] == 3
        assert values[("ecg_gateway_engine_fallbacks_total", ())] == 0
        assert values[("ecg_gateway_deliveries_unsent", (("destination", "outbox"),))] == 0

        assert httpx.post(f"{url}/metrics").status_code == 405
        assert httpx.get(f"{url}/nothing").status_code == 404
    finally:
        gateway.stop_if_running()


def _wait_for_deliveries(url: str, count: int) -> dict:
    """The metrics once `count` deliveries to the outbox are counted."""
    key = ("ecg_gateway_deliveries_total", (("destination", "outbox"), ("outcome", "sent")))
    for _ in range(300):
        values = samples_of(httpx.get(f"{url}/metrics").text)
        if values.get(key) == count:
            return values
        threading.Event().wait(0.2)
    raise AssertionError(f"deliveries not counted: {values.get(key)}")


def test_binding_beyond_localhost_without_token_and_tls_is_refused_with_its_line(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text("workers: 1\nadmin:\n  bind: 0.0.0.0\n  port: 9100\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "line 2: admin:" in message  # the section that binds beyond localhost
    assert "admin.token_file and admin.tls" in message


def test_an_empty_or_missing_token_file_names_the_key(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="admin.token_file: .* is empty"):
        read_token(empty)
    with pytest.raises(ConfigError, match="admin.token_file: cannot read"):
        read_token(tmp_path / "absent")


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    yield store
    store.close()


def _readiness(store, tmp_path, **changes) -> Readiness:
    settings = {
        "store": store,
        "spool_dir": tmp_path,
        "min_free_bytes": 0,
        "scp_listening": lambda: True,
        "engine": lambda: EngineState("measure", "ready"),
        "destinations": lambda: ["ehr"],
        "draining": threading.Event(),
        **changes,
    }
    return Readiness(**settings)


def test_token_and_tls_beyond_localhost(tmp_path, store):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    pki = make_pki(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-for-the-admin-endpoint\n")
    config = AdminConfig(
        bind="0.0.0.0",
        port=0,
        token_file=token_file,
        tls={"enabled": True, "cert": pki.server_cert, "key": pki.server_key},
    )
    metrics = Metrics()
    metrics.inc(JOBS_DONE)
    app = AdminApp(_readiness(store, tmp_path), metrics.registry, read_token(token_file))
    server = start_admin(config, app, metrics)
    url = f"https://localhost:{server.port}"
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=pki.ca)) as client:
            assert client.get(f"{url}/healthz").status_code == 401
            assert client.get(f"{url}/metrics").status_code == 401
            wrong = {"Authorization": "Bearer s3cret-token-for-the-admin-endpoinX"}
            assert client.get(f"{url}/readyz", headers=wrong).status_code == 401
            basic = {"Authorization": "Basic s3cret-token-for-the-admin-endpoint"}
            assert client.get(f"{url}/readyz", headers=basic).status_code == 401
            right = {"Authorization": "Bearer s3cret-token-for-the-admin-endpoint"}
            assert client.get(f"{url}/healthz", headers=right).text == "ok\n"
            metrics_text = client.get(f"{url}/metrics", headers=right).text
            assert samples_of(metrics_text)[("ecg_gateway_job_events_total", (("event", "done"),))]
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port gets nothing
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", headers=right, timeout=5)
        with pytest.raises(httpx.ConnectError):  # a certificate the client cannot trust
            httpx.get(
                f"{url}/healthz",
                headers=right,
                verify=ssl.create_default_context(cafile=pki.other_ca),
            )
    finally:
        server.stop()


def test_a_failed_tls_handshake_is_logged_with_the_peer_and_counted(tmp_path, store, caplog):
    """The admin endpoint's failed handshakes (plain HTTP on the TLS port; openssl
    s_client without the client certificate required) are logged at WARNING with the peer
    and OpenSSL's reason and counted, as the other listeners' are; a trusted client with
    its certificate is still answered."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    pki = make_pki(tmp_path)
    tls = {"enabled": True, "cert": pki.server_cert, "key": pki.server_key, "ca": pki.ca,
           "require_client_cert": True}  # fmt: skip
    config = AdminConfig(port=0, tls=tls)
    metrics = Metrics()
    server = start_admin(config, AdminApp(_readiness(store, tmp_path), metrics.registry), metrics)
    try:
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        no_certificate = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-CAfile", pki.ca],
            input=b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", capture_output=True,
            timeout=30, check=False,
        )  # fmt: skip
        assert b"HTTP/1.0 200" not in no_certificate.stdout
        assert settled_rejections(metrics, {ADMIN_TLS_FAILED: 2})
        with_certificate = ssl.create_default_context(cafile=str(pki.ca))
        with_certificate.load_cert_chain(pki.client_cert, pki.client_key)
        answer = httpx.get(f"https://localhost:{server.port}/metrics", verify=with_certificate)
        assert answer.status_code == 200  # the endpoint stayed up, and shows the count
        rejected = ("ecg_gateway_rejections_total", (("reason", ADMIN_TLS_FAILED),))
        assert samples_of(answer.text)[rejected] == 2
    finally:
        server.stop()
    assert_plain_then_no_certificate_logged(caplog, "admin")


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"scp_listening": lambda: False}, "scp"),
        ({"engine": lambda: EngineState("vlm", "held", "no weights")}, "engine"),
        ({"min_free_bytes": 1 << 62}, "spool"),
    ],
)
def test_readyz_is_503_naming_the_failed_check(tmp_path, store, change, failing):
    ready, body = _readiness(store, tmp_path, **change).report()
    assert not ready and body["ready"] is False
    assert [name for name, check in body["checks"].items() if not check["ok"]] == [failing]


def test_readyz_while_draining_and_with_a_store_that_cannot_write(tmp_path, store):
    draining = threading.Event()
    readiness = _readiness(store, tmp_path, draining=draining)
    assert readiness.report()[0]
    draining.set()
    assert readiness.report()[1]["checks"]["draining"] == {"ok": False}
    store.close()  # a store that cannot be written to (closed) fails its check
    ready, body = _readiness(store, tmp_path).report()
    assert not ready and not body["checks"]["store"]["ok"]


def test_readyz_names_what_failed_not_the_stores_address_or_the_spools_path(tmp_path, store):
    """/readyz answers the network: a failing store or spool is named by what failed,
    never by the store's text (its file, or a database's user@host) or the spool's path."""
    store.close()
    ready, body = _readiness(store, tmp_path, spool_dir=tmp_path / "gone").report()
    assert not ready and body["checks"]["store"] == {"ok": False, "error": "store unavailable"}
    assert body["checks"]["spool"] == {
        "ok": False,
        "error": "FileNotFoundError (No such file or directory)",
    }
    assert body["destinations"] == {"error": "store unavailable"}
    assert str(tmp_path) not in json.dumps(body)


def test_a_fallen_back_engine_is_ready_and_each_destination_is_listed(tmp_path, store):
    readiness = _readiness(
        store, tmp_path, engine=lambda: EngineState("vlm", "fallback", "no weights")
    )
    ready, body = readiness.report()
    assert ready and body["checks"]["engine"]["state"] == "fallback"
    assert body["destinations"] == {
        "ehr": {"state": "ok", "unsent": 0, "dead": 0, "oldest_unsent_s": 0.0}
    }


def test_counters_keep_their_names_for_metrics_json(tmp_path):
    metrics = Metrics()
    metrics.inc(ASSOCIATIONS_ACCEPTED)
    metrics.reject("tls-handshake-failed")
    metrics.reject("truncated")
    assert metrics.get(ASSOCIATIONS_ACCEPTED) == 1
    assert metrics.rejections() == {"tls-handshake-failed": 1, "truncated": 1}
    metrics.write(tmp_path / "metrics.json")
    assert "rejected.truncated" in (tmp_path / "metrics.json").read_text()
    values = samples_of(generate_latest(metrics.registry).decode())  # /metrics' text
    assert values[("ecg_gateway_associations_total", (("outcome", "rejected"),))] == 1
    assert values[("ecg_gateway_rejections_total", (("reason", "truncated"),))] == 1


@pytest.mark.parametrize("on_unavailable", ["fallback", "hold"])
def test_readyz_tells_the_engines_state_without_the_model_path(
    tmp_path, store, caplog, on_unavailable
):
    """A VLM whose model is missing: /readyz (asked over HTTP) says fallback or held and
    that the model cannot be loaded, never where it was looked for (a path may name a
    site's folders); the gateway's log names the path, for the operator."""
    model = tmp_path / "models" / "smolvlm-ward7"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"routes_optional: true\nengine: vlm\nvlm: {{model: {model}}}\n"
        f"engine_unavailable: {on_unavailable}\n"
    )
    choice = engine_choice(load_config(config))
    assert str(model) in caplog.text  # the log has where
    readiness = _readiness(store, tmp_path, engine=lambda: engine_state(choice))
    metrics = Metrics()
    server = start_admin(AdminConfig(port=0), AdminApp(readiness, metrics.registry, None), metrics)
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.port}/readyz")
    finally:
        server.stop()
    assert answer.status_code == (200 if on_unavailable == "fallback" else 503)
    assert answer.json()["checks"]["engine"] == {
        "ok": on_unavailable == "fallback",
        "name": "vlm",
        "state": "fallback" if on_unavailable == "fallback" else "held",
        "detail": ENGINE_UNAVAILABLE,
    }
    assert "smolvlm-ward7" not in answer.text and str(tmp_path) not in answer.text
