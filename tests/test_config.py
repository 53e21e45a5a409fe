"""gateway.yaml: embedded defaults, the shipped file, and one clear message (file, field,
line) with exit code 2 for a wrong file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import ConfigError, GatewayConfig, TlsConfig, load_config, log_security_posture
from gateway.intake.dicom_scp import tls_context
from training.config import TrainingConfigError, load_yaml_config
from training.dataset import DatasetConfig

REPO = Path(__file__).resolve().parent.parent


def test_embedded_defaults():
    config = load_config(None)
    assert (config.ae_title, config.port, config.workers, config.engine) == (
        "ECGGW",
        11112,
        2,
        "measure",
    )
    assert config.allowed_calling_aes == [] and not config.tls.enabled
    assert config.store_path == config.data_dir / "gateway.sqlite3"


def test_shipped_file_is_valid_and_states_the_defaults():
    assert load_config(REPO / "config" / "gateway.yaml") == GatewayConfig()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_wrong_value_names_file_field_and_line(tmp_path):
    path = _write(tmp_path, "ae_title: ECGGW\nport: 99999\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "line 2" in message and "port" in message


def test_unknown_nested_key_is_an_error_with_its_line(tmp_path):
    path = _write(tmp_path, "tls:\n  enabled: false\n  certificate: /x.pem\n")
    with pytest.raises(ConfigError, match=r"line 3: tls\.certificate: Extra inputs"):
        load_config(path)


def test_a_key_written_twice_is_an_error_with_its_line(tmp_path):
    """PyYAML would keep the second silently: here TLS would be off without a word."""
    path = _write(tmp_path, "port: 104\ntls:\n  enabled: true\nworkers: 2\ntls: {}\n")
    with pytest.raises(ConfigError, match=r"gateway\.yaml: line 5: tls: key appears twice"):
        load_config(path)


def test_tls_enabled_without_key_is_an_error(tmp_path):
    path = _write(tmp_path, "tls:\n  enabled: true\n  cert: /x.pem\n")
    with pytest.raises(ConfigError, match=r"line 1: tls: .*needs both 'cert' and 'key'"):
        load_config(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "allowed_calling_aes: [GOOD, 'THIS AE TITLE IS FAR TOO LONG']\n",
            r"allowed_calling_aes\.1",
        ),
        ("allowed_addresses: [10.0.0.0/8, not-an-address]\n", r"allowed_addresses"),
        ("engine: gpt\n", r"engine"),
        ("workers: 0\n", r"workers"),
        (
            "statement_limits:\n  bradycardia_bpm: 20\n",
            r"line 2: statement_limits\.bradycardia_bpm",
        ),
        ("statement_limits:\n  brady: 60\n", r"statement_limits\.brady: Extra inputs"),
        (  # a formatting deadline past the delivery's lease: another sweep would retake it
            "delivery_format_timeout_s: 300\n",
            r"delivery_format_timeout_s: Input should be less than or equal to 120",
        ),
    ],
)
def test_invalid_values(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, text))


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "port: 11112\nworkers: [1,\n")
    with pytest.raises(ConfigError, match=r"line 3: invalid YAML"):
        load_config(path)


def test_serve_with_a_wrong_file_exits_2_with_one_message(tmp_path, capsys):
    path = _write(tmp_path, "workrs: 4\n")
    assert main(["serve", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"{path}: line 1: workrs" in err


def test_serve_without_its_routes_file_exits_2_naming_the_setting(tmp_path, capsys):
    path = _write(tmp_path, f"routes: {tmp_path / 'routes.yaml'}\ndata_dir: {tmp_path / 'data'}\n")
    assert main(["serve", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'routes.yaml'}: not found" in err
    assert "routes_optional: true" in err
    assert not (tmp_path / "data" / "gateway.sqlite3").exists()  # refused before any state


def test_bad_command_line_override_exits_2(capsys):
    assert main(["serve", "--port", "70000"]) == 2
    assert "command line: port" in capsys.readouterr().err
    assert main(["serve", "--bind", "not-an-address"]) == 2
    assert "command line: bind_address" in capsys.readouterr().err


def test_unreadable_tls_files_are_named(tmp_path):
    tls = TlsConfig(enabled=True, cert=tmp_path / "missing.pem", key=tmp_path / "missing.key")
    with pytest.raises(ConfigError, match="missing.pem"):
        tls_context(tls)


def test_any_calling_ae_is_announced_at_start(caplog):
    with caplog.at_level(logging.WARNING):
        log_security_posture(GatewayConfig())
    assert "ANY calling AE" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        log_security_posture(GatewayConfig(allowed_calling_aes=["CART1"]))
    assert "calling AE" not in caplog.text


def test_training_config_errors_name_the_line_or_the_flag(tmp_path):
    """config/training/*.yaml is read as gateway.yaml is: each error with its line; a value
    given on the command line is named as such, not blamed on the file's line."""
    path = tmp_path / "dataset.yaml"
    path.write_text("output_dir: out\ndpi: 20\nworkers: 1\n")
    with pytest.raises(TrainingConfigError, match=r"dataset\.yaml: line 2: dpi: "):
        load_yaml_config(path, DatasetConfig)
    with pytest.raises(TrainingConfigError, match=r"\(command line\) workers: "):
        load_yaml_config(path, DatasetConfig, dpi=140, workers=0)
    path.write_text("output_dir: out\ndpi: 140\ndpi: 300\n")
    with pytest.raises(TrainingConfigError, match=r"dataset\.yaml: line 3: dpi: key appears twice"):
        load_yaml_config(path, DatasetConfig)


def test_storage_commitment_peer_must_be_host_and_port(tmp_path):
    path = _write(tmp_path, "storage_commitment:\n  peers:\n    CART1: 10.0.0.7\n")
    with pytest.raises(ConfigError, match=r"line 3: storage_commitment\.peers\.CART1: .*host:port"):
        load_config(path)
    path = _write(tmp_path, "storage_commitment:\n  peers:\n    CART1: '10.0.0.7:104'\n")
    assert load_config(path).storage_commitment.peers == {"CART1": "10.0.0.7:104"}
