"""`ecg-gateway demo`: a real gateway process, real `ecg-gateway send`, the real outbox."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from gateway.cli.demo import (
    SHIPPED_CONFIG,
    DemoError,
    fresh_workspace,
    run_samples,
    wait_for_reports,
)
from gateway.cli.demo_samples import DemoSample, prepare_samples
from gateway.store import NewJob, SqliteStore
from model.dicom_write import ecg_to_dicom
from model.synthetic import synthetic_ecg

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ECG_GATEWAY_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """The CLI as a user runs it, started from a directory other than the repository.
    The demo's wait is generous: the suite's other processes can load the machine."""
    out = tmp_path_factory.mktemp("demo") / "out"
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--out", str(out), "--timeout", "150"],
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    return done, out


def _sent_uids(out: Path) -> list[str]:
    return [
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in sorted((out / "samples").glob("*.dcm"))
    ]


def test_demo_stops_the_gateway_cleanly(demo) -> None:
    done, out = demo
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gateway stopped by SIGTERM, exit code 0" in done.stdout
    log = (out / "gateway.log").read_text()
    assert "INFO gateway.server: stopped" in log
    assert "listening on 127.0.0.1:" in log  # the demo is not reachable from the network


def test_every_sample_is_in_the_outbox_in_every_format(demo) -> None:
    _, out = demo
    outbox = out / "data" / "outbox"
    uids = _sent_uids(out)
    assert uids
    for uid in uids:
        bundle = json.loads((outbox / f"{uid}.fhir.json").read_text())
        assert bundle["resourceType"] == "Bundle"
        reports = [
            e["resource"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "DiagnosticReport"
        ]
        assert [i["value"] for i in reports[0]["identifier"]] == [f"urn:oid:{uid}"]
        assert (outbox / f"{uid}.hl7").read_bytes().startswith(b"MSH|")
        assert uid.encode() in (outbox / f"{uid}.hl7").read_bytes()
        assert (outbox / f"{uid}.png").read_bytes().startswith(b"\x89PNG")
        assert (outbox / f"{uid}.pdf").read_bytes().startswith(b"%PDF-")


def test_summary_shows_each_ecg_with_the_impression_it_delivered(demo) -> None:
    done, out = demo
    outbox = out / "data" / "outbox"
    blocks = re.split(r"\n\[\d+\] ", done.stdout)[1:]
    uids = _sent_uids(out)
    assert len(blocks) == len(uids)
    for uid in uids:
        bundle = json.loads((outbox / f"{uid}.fhir.json").read_text())
        conclusion = next(
            e["resource"]["conclusion"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "DiagnosticReport"
        )
        block = next(b for b in blocks if f"SOP Instance UID {uid}\n" in b)
        impression = re.search(r"Impression: (.*)\n", block).group(1)
        notes = re.search(r"(Technical notes: .*)\n", block)
        assert conclusion == " ".join([impression, *([notes.group(1)] if notes else [])])
        assert "Outbox: fhir.json " in block and ", pdf " in block


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs the real samples in shared/data")
def test_real_samples_cover_waveforms_vendor_dicom_and_a_scanned_page(demo) -> None:
    done, _ = demo
    for name in (
        "PTB-XL",
        "LUDB",
        "CinC 2021",
        "GE MUSE XML",
        "GE MUSE as DICOM",
        "Scanned paper ECG (Secondary Capture)",
    ):
        assert name in done.stdout
    assert re.search(r"HR \d+/min  PR \d+ ms  QRS \d+ ms  QT \d+ ms  QTc \d+ ms", done.stdout)
    assert "Measurements: none (no waveform" in done.stdout


def _truncated_sample(directory: Path) -> DemoSample:
    """A waveform object cut short, as an interrupted copy leaves it: refused at C-STORE."""
    ds = ecg_to_dicom(synthetic_ecg())
    path = directory / "truncated.dcm"
    ds.save_as(path, enforce_file_format=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    return DemoSample("truncated waveform", path, str(ds.SOPInstanceUID))


def _no_sensitivity_sample(directory: Path) -> DemoSample:
    """A complete ECG object whose channels lack ChannelSensitivity: accepted, undecodable."""
    ds = ecg_to_dicom(synthetic_ecg())
    for group in ds.WaveformSequence:
        for channel in group.ChannelDefinitionSequence:
            del channel.ChannelSensitivity
    path = directory / "no-sensitivity.dcm"
    ds.save_as(path, enforce_file_format=True)
    return DemoSample("ECG without amplitude scale", path, str(ds.SOPInstanceUID))


def test_undecodable_samples_fail_the_demo_with_their_names(tmp_path, capsys) -> None:
    workspace = fresh_workspace(tmp_path / "out")
    samples = prepare_samples(tmp_path / "no-data", workspace / "samples")
    samples += [
        _truncated_sample(workspace / "samples"),
        _no_sensitivity_sample(workspace / "samples"),
    ]
    started = time.monotonic()
    code = run_samples(samples, workspace, SHIPPED_CONFIG, timeout_s=60)
    captured = capsys.readouterr()
    assert code == 1
    assert time.monotonic() - started < 60
    assert (
        "2 of 3 ECG(s) did not reach the outbox: truncated waveform, "
        "ECG without amplitude scale" in captured.err
    )
    assert re.search(
        r"\[2\] truncated waveform\n.*\n    REFUSED at C-STORE: FAILED 0x", captured.out
    )
    assert re.search(
        r"\[3\] ECG without amplitude scale\n.*\n    FAILED: undecodable: .*"
        r"no ChannelSensitivity",
        captured.out,
    )
    assert "Impression: Sinus rhythm" in captured.out  # the good one still went through
    assert "exit code 0" in captured.out


def test_a_gateway_that_does_not_come_up_is_reported(tmp_path, capsys) -> None:
    workspace = fresh_workspace(tmp_path / "out")
    samples = prepare_samples(tmp_path / "no-data", workspace / "samples")
    (workspace / "data").mkdir()
    with open(workspace / "data" / "gateway.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as if another gateway served this directory
        with pytest.raises(
            DemoError,
            match="exited with 1 before accepting associations"
            "(.|\n)*another gateway is already running here",
        ):
            run_samples(samples, workspace, SHIPPED_CONFIG, timeout_s=30)


class _SilentGateway:
    """Stands in for a gateway that runs but never processes anything."""

    log_path = Path("gateway.log")

    def exited(self) -> None:
        return None


def test_waiting_gives_up_after_the_timeout_and_says_what_is_missing(tmp_path) -> None:
    from gateway.config import GatewayConfig

    config = GatewayConfig(data_dir=tmp_path)
    store = SqliteStore(config.store_path)
    ecg_class = "1.2.840.10008.5.1.4.1.1.9.1.1"
    store.add_job(NewJob("1.2.3.4", ecg_class, "ab", "x.dcm", "ecg-waveform", "CART", "ECGGW", ""))
    store.close()
    sample = DemoSample("stuck ECG", tmp_path / "x.dcm", "1.2.3.4")
    started = time.monotonic()
    with pytest.raises(DemoError, match=r"not in the outbox after 1 s:\n  stuck ECG: job queued"):
        wait_for_reports(config, [sample], {}, 1.0, _SilentGateway())
    assert time.monotonic() - started < 5


def test_a_folder_that_is_not_a_demo_output_is_never_emptied(tmp_path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not empty and not a demo folder"):
        fresh_workspace(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
