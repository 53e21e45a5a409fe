"""Watched folders: real cart files (GE MUSE XML, a DICOM ECG) dropped into a folder become
jobs exactly like C-STORE objects, only once complete, routed by the folder's source; a
file leaves the folder only after its job is committed, and a kill -9 of `ecg-gateway
serve` between copy and commit, or between commit and move, loses and repeats nothing."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from gateway import metrics as m
from gateway.config import ConfigError, WatchFolder, load_config
from gateway.intake.accept import Intake
from gateway.intake.files import file_uid
from gateway.intake.folders import FolderWatcher
from gateway.metrics import Metrics
from gateway.store import SqliteStore
from tests import dicom_samples as samples
from tests.gateway_process import GatewayProcess

MUSE = "vendor/muse/muse-sinus.xml"  # patient DOE^JOHN, ID 081486213
PATIENT_STRINGS = ("DOE", "JOHN", "081486213")


class Intakes:
    """A store, a spool and an Intake on them, as the server builds them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "spool").mkdir(parents=True, exist_ok=True)
        self.metrics = Metrics()
        self.open()

    def open(self) -> None:
        self.store = SqliteStore(self.root / "gateway.sqlite3")
        self.intake = Intake(self.store, self.root / "spool", self.metrics)

    def watcher(self, folder: Path, **settings: object) -> FolderWatcher:
        config = WatchFolder(path=folder, source=settings.pop("source", "ward-a"), **settings)
        return FolderWatcher(config, self.intake, self.root)

    def jobs(self) -> list:
        return self.store.list_jobs()

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def intakes(tmp_path):
    with closing(Intakes(tmp_path / "gw")) as made:
        yield made


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "carts"
    path.mkdir()
    return path


def _drop(shared_data: Path, folder: Path, name: str, source: str = MUSE) -> Path:
    target = folder / name
    shutil.copyfile(shared_data / source, target)
    return target


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_a_muse_file_becomes_a_job_once_stable_and_only_then_leaves(intakes, folder, shared_data):
    watcher = intakes.watcher(folder)
    _drop(shared_data, folder, "DOE_JOHN.xml")
    assert watcher.poll() == 0  # first sight: not yet known to be complete
    assert intakes.jobs() == [] and _names(folder) == ["DOE_JOHN.xml"]
    assert watcher.poll() == 1
    [job] = intakes.jobs()
    data = (shared_data / MUSE).read_bytes()
    assert job.kind == "ecg-waveform" and job.source == "ward-a"
    assert job.sop_instance_uid == file_uid(job.content_sha256)
    assert job.sop_instance_uid.startswith("2.25.") and len(job.sop_instance_uid) <= 64
    assert (job.institution, job.station) == ("UNIVERSITY OF HOSPITAL", "74")
    assert Path(job.spool_path).read_bytes() == data
    assert _names(folder) == ["processed"]
    assert _names(folder / "processed") == ["DOE_JOHN.xml"]


def test_a_file_the_gateway_fails_on_stays_and_does_not_hold_up_the_others(
    intakes, folder, shared_data, monkeypatch, caplog
):
    """A fault on one file (here intake raising what it never raises, for the older
    file) leaves that file in place, logged without its content, and the younger file
    is still taken in the same poll."""
    from gateway.intake import folders as folders_module

    real = folders_module.accept_file
    muse = (shared_data / MUSE).read_bytes()

    def broken_for_muse(intake, received):
        if received.data == muse:
            raise KeyError(PATIENT_STRINGS[2])
        return real(intake, received)

    monkeypatch.setattr(folders_module, "accept_file", broken_for_muse)
    watcher = intakes.watcher(folder)
    older = _drop(shared_data, folder, "a-muse.xml")
    _drop(shared_data, folder, "b-ecg.dcm", samples.VENDOR_ECG)
    os.utime(older, ns=(older.stat().st_mtime_ns - 10**9,) * 2)
    watcher.poll()
    assert watcher.poll() == 1
    assert _names(folder) == ["a-muse.xml", "processed"]
    assert _names(folder / "processed") == ["b-ecg.dcm"]
    assert "KeyError at test_watch_folders.py:" in caplog.text
    assert not any(value in caplog.text for value in PATIENT_STRINGS)
    monkeypatch.setattr(folders_module, "accept_file", real)
    assert watcher.poll() == 1 and _names(folder / "processed") == ["a-muse.xml", "b-ecg.dcm"]


def test_a_file_that_cannot_be_moved_is_tried_again_without_being_taken_again(
    intakes, folder, shared_data, tmp_path, caplog
):
    """Committed, but processed/ cannot be made: later polls try only the move (no
    duplicate, no new audit record, one log line), and it succeeds once it can."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the processed folder should be")
    watcher = intakes.watcher(folder, move_to=blocked)
    _drop(shared_data, folder, "ecg.xml")
    for _ in range(5):
        watcher.poll()
    assert len(intakes.jobs()) == 1 and _names(folder) == ["ecg.xml"]
    assert intakes.metrics.get(m.OBJECTS_DUPLICATE) == 0
    assert caplog.text.count("cannot move a processed file") == 1
    blocked.unlink()  # the admin makes room
    watcher.poll()
    assert _names(folder) == [] and _names(blocked) == ["ecg.xml"]
    assert len(intakes.jobs()) == 1 and intakes.metrics.get(m.OBJECTS_DUPLICATE) == 0


def test_the_same_file_dropped_again_is_a_duplicate_and_still_leaves(intakes, folder, shared_data):
    watcher = intakes.watcher(folder)
    for _ in range(2):
        _drop(shared_data, folder, "ecg.xml")
        watcher.poll()
        watcher.poll()
    assert len(intakes.jobs()) == 1
    assert intakes.metrics.get(m.OBJECTS_DUPLICATE) == 1
    assert _names(folder / "processed") == ["ecg.xml", "ecg.xml.1"]


def test_names_being_written_and_files_still_growing_are_not_taken(intakes, folder, shared_data):
    watcher = intakes.watcher(folder)
    data = (shared_data / MUSE).read_bytes()
    (folder / "a.xml.part").write_bytes(data)
    (folder / ".b.xml").write_bytes(data)
    growing = folder / "c.xml"
    growing.write_bytes(data[:1000])
    watcher.poll()
    with open(growing, "ab") as fh:  # the writer goes on between two polls
        fh.write(data[1000:])
    assert watcher.poll() == 0
    assert intakes.jobs() == []
    assert watcher.poll() == 1  # unchanged since the last poll: complete
    assert _names(folder) == [".b.xml", "a.xml.part", "processed"]
    os.rename(folder / "a.xml.part", folder / "a.xml")  # the writer's rename into place
    watcher.poll()
    watcher.poll()
    assert _names(folder / "processed") == ["a.xml", "c.xml"]
    assert len(intakes.jobs()) == 1  # same content: a duplicate of c.xml


def test_an_undecodable_file_goes_to_error_with_its_reason_and_no_patient_data_in_logs(
    intakes, folder, shared_data, caplog
):
    caplog.set_level(logging.DEBUG)
    watcher = intakes.watcher(folder)
    data = (shared_data / MUSE).read_bytes()
    (folder / "DOE_JOHN_081486213.xml").write_bytes(data[: len(data) // 2])
    watcher.poll()
    assert watcher.poll() == 0
    assert intakes.jobs() == [] and list((intakes.root / "spool").iterdir()) == []
    assert _names(folder) == ["error"]
    assert _names(folder / "error") == [
        "DOE_JOHN_081486213.xml",
        "DOE_JOHN_081486213.xml.error.txt",
    ]
    assert (folder / "error" / "DOE_JOHN_081486213.xml").read_bytes() == data[: len(data) // 2]
    reason = (folder / "error" / "DOE_JOHN_081486213.xml.error.txt").read_text()
    assert "undecodable: cannot decode:" in reason
    assert "moved to error/" in caplog.text
    for text in (caplog.text, reason):
        assert not any(s in text for s in PATIENT_STRINGS), text


@pytest.mark.parametrize(
    ("source", "file_format"),
    [
        ("vendor/sierra/129DYPRG.XML", "philips-xml"),
        ("vendor/sierra/2020-5-18_15-48-11.xml", "philips-xml"),
        ("vendor/aecg/fda_example_aecg.xml", "hl7-aecg"),
        ("vendor/scp/demodata/ECG_0/62.SCP", "scp-ecg"),
        (MUSE, "muse-xml"),
    ],
)
def test_every_cart_format_is_taken_by_a_folder_for_it_and_refused_by_another(
    intakes, folder, shared_data, source, file_format
):
    other = "muse-xml" if file_format != "muse-xml" else "hl7-aecg"
    refusing = intakes.watcher(folder, format=other)
    _drop(shared_data, folder, "ecg-file", source)
    refusing.poll()
    assert refusing.poll() == 0 and intakes.jobs() == []
    reason = (folder / "error" / "ecg-file.error.txt").read_text()
    assert f"wrong-format: expected {other}, the file is {file_format}" in reason

    watcher = intakes.watcher(folder, format=file_format)
    os.rename(folder / "error" / "ecg-file", folder / "ecg-file")  # the admin moves it back
    watcher.poll()
    assert watcher.poll() == 1
    [job] = intakes.jobs()
    assert job.kind == "ecg-waveform" and job.sop_instance_uid.startswith("2.25.")


def test_a_folder_for_one_format_refuses_another(intakes, folder, shared_data):
    watcher = intakes.watcher(folder, format="muse-xml")
    _drop(shared_data, folder, "ecg.dcm", samples.VENDOR_ECG)
    watcher.poll()
    watcher.poll()
    assert intakes.jobs() == []
    reason = (folder / "error" / "ecg.dcm.error.txt").read_text()
    assert "wrong-format: expected muse-xml, the file is DICOM" in reason


def test_a_stop_ends_a_poll_after_the_file_in_hand(intakes, folder, shared_data):
    watcher = intakes.watcher(folder)
    for name in ("a.xml", "b.xml"):
        _drop(shared_data, folder, name)
    watcher.poll()
    stop = threading.Event()
    stop.set()
    assert watcher.poll(stop) == 0
    assert intakes.jobs() == [] and _names(folder) == ["a.xml", "b.xml"]
    assert watcher.poll() == 2  # b.xml is the same content: a duplicate, moved as well
    assert len(intakes.jobs()) == 1
    assert _names(folder / "processed") == ["a.xml", "b.xml"]


def test_a_file_over_the_size_limit_goes_to_error_unread(intakes, folder, shared_data):
    watcher = intakes.watcher(folder, max_file_mb=0.1)
    _drop(shared_data, folder, "ecg.xml")  # 143 KB
    watcher.poll()
    watcher.poll()
    assert intakes.jobs() == [] and intakes.metrics.rejections() == {"too-large": 1}
    reason = (folder / "error" / "ecg.xml.error.txt").read_text()
    assert "too-large: larger than max_file_mb (0.1 MB)" in reason


def test_a_dicom_file_is_the_same_job_as_the_same_object_by_c_store(intakes, folder, shared_data):
    """Its own SOP Instance UID, kind from its SOP class, and the content hash of its
    dataset: the same object sent by C-STORE as well is a duplicate, not a correction."""
    from gateway.intake.accept import ReceivedObject

    watcher = intakes.watcher(folder, after="delete")
    path = _drop(shared_data, folder, "ecg.dcm", samples.VENDOR_ECG)
    data = path.read_bytes()
    watcher.poll()
    assert watcher.poll() == 1
    [job] = intakes.jobs()
    assert job.sop_class_uid == "1.2.840.10008.5.1.4.1.1.9.1.2" and job.kind == "ecg-waveform"
    assert _names(folder) == []  # after: delete
    import pydicom

    ds = pydicom.dcmread(shared_data / samples.VENDOR_ECG)
    assert job.sop_instance_uid == ds.SOPInstanceUID
    offset = 132 + 12 + ds.file_meta.FileMetaInformationGroupLength
    by_network = ReceivedObject(
        job.sop_class_uid, job.sop_instance_uid, data, offset, "C", "G", "p"
    )
    outcome = intakes.intake.accept(by_network)
    assert (outcome.duplicate, outcome.job_id) == (True, job.id)


def test_move_to_another_file_system_copies_durably_then_deletes(intakes, folder, shared_data):
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(folder).st_dev:
        pytest.skip("no second file system at /dev/shm")
    with tempfile.TemporaryDirectory(dir=other) as elsewhere:
        watcher = intakes.watcher(folder, move_to=Path(elsewhere) / "done")
        _drop(shared_data, folder, "ecg.xml")
        watcher.poll()
        assert watcher.poll() == 1
        assert _names(folder) == []
        moved = Path(elsewhere) / "done" / "ecg.xml"
        assert moved.read_bytes() == (shared_data / MUSE).read_bytes()


def test_a_refusal_keeps_the_spool_file_of_the_same_bytes_accepted_meanwhile(
    intakes, shared_data, monkeypatch
):
    """The same file refused by one channel (a folder for another format) while another
    (the upload) accepts it: both wrote the one spool file; the refusal must not remove
    the accepted job's input."""
    from gateway.intake import files

    data = (shared_data / MUSE).read_bytes()
    load = files.model.load
    others = []

    def load_while_the_upload_accepts_it(path):
        monkeypatch.setattr(files.model, "load", load)  # once
        upload = files.ReceivedFile(data, "uploads", "http 10.0.0.9", "auto")
        others.append(files.accept_file(intakes.intake, upload))
        return load(path)

    monkeypatch.setattr(files.model, "load", load_while_the_upload_accepts_it)
    folder = files.ReceivedFile(data, "ward", "folder ward", "hl7-aecg")
    refused = files.accept_file(intakes.intake, folder)
    assert refused.reason == "wrong-format" and others[0].job_id is not None
    [job] = intakes.jobs()
    assert Path(job.spool_path).read_bytes() == data


def test_kept_files_are_remembered_across_a_restart_and_a_changed_file_is_taken(
    intakes, folder, shared_data
):
    watcher = intakes.watcher(folder, after="keep")
    path = _drop(shared_data, folder, "ecg.xml")
    watcher.poll()
    assert watcher.poll() == 1
    assert _names(folder) == ["ecg.xml"]

    restarted = intakes.watcher(folder, after="keep")  # a new process: only the disk remembers
    restarted.poll()
    assert restarted.poll() == 0
    assert intakes.metrics.get(m.OBJECTS_DUPLICATE) == 0  # not even read again
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same content
    restarted.poll()
    assert restarted.poll() == 0 and intakes.metrics.get(m.OBJECTS_DUPLICATE) == 0
    _drop(shared_data, folder, "ecg.xml", "vendor/muse/guangxi_teaching_sinus_rhythm.xml")
    restarted.poll()
    assert restarted.poll() == 1
    assert len(intakes.jobs()) == 2


def test_a_store_that_cannot_be_written_leaves_the_file_for_a_later_poll(
    intakes, folder, shared_data
):
    watcher = intakes.watcher(folder)
    _drop(shared_data, folder, "ecg.xml")
    watcher.poll()
    intakes.store.close()  # the store fails: every call raises StoreError
    assert watcher.poll() == 0
    assert _names(folder) == ["ecg.xml"]
    assert intakes.metrics.rejections() == {"store-unavailable": 1}
    intakes.open()
    watcher.intake = intakes.intake
    assert watcher.poll() == 1
    assert _names(folder) == ["processed"] and len(intakes.jobs()) == 1


def test_config_errors_name_the_key_and_line(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "watch_folders:\n"
        "  - path: /srv/ecg/ward-a\n"
        "    source: ward-a\n"
        "  - path: /srv/ecg/ward-b\n"
        "    source: ward b\n"
        "    after: keep\n"
    )
    with pytest.raises(ConfigError, match=r"line 5: watch_folders\.1\.source"):
        load_config(config)
    config.write_text(
        "watch_folders:\n  - path: /srv/x\n    source: a\n    after: keep\n    move_to: /srv/y\n"
    )
    with pytest.raises(ConfigError, match=r"line 2: watch_folders\.0: .*move_to is only used"):
        load_config(config)
    config.write_text(
        "watch_folders:\n  - {path: /srv/x, source: a}\n  - {path: /srv/x/, source: b}\n"
    )
    with pytest.raises(ConfigError, match="watched twice"):
        load_config(config)


# --- the gateway as a process ------------------------------------------------------------


def _gateway(tmp_path: Path, folders: str, routes: str | None = None) -> GatewayProcess:
    config = tmp_path / "gateway.yaml"
    routes_line = f"routes: {routes}\n" if routes else "routes_optional: true\n"
    config.write_text(f"workers: 1\n{routes_line}watch_folders:\n{folders}")
    return GatewayProcess(tmp_path / "data", config=config)


def _wait_for(condition, what: str, gateway: GatewayProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what}\n{gateway.logs()[-3000:]}")


needs_dcmtk = pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk not installed")


@needs_dcmtk
def test_reports_are_routed_by_the_folder_source(tmp_path, shared_data):
    ward, clinic = tmp_path / "ward", tmp_path / "clinic"
    ward.mkdir()
    clinic.mkdir()
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "destinations:\n"
        "  ward-inbox: {type: file, directory: ward-inbox, formats: [fhir]}\n"
        "  outbox: {type: file, directory: outbox, formats: [fhir]}\n"
        "rules:\n"
        "  - {name: ward, match: {source: ward-*}, destinations: [ward-inbox]}\n"
        "default: [outbox]\n"
    )
    gateway = _gateway(
        tmp_path,
        f"  - {{path: {ward}, source: ward-7, poll_interval_s: 0.2}}\n"
        f"  - {{path: {clinic}, source: clinic, poll_interval_s: 0.2}}\n",
        routes=str(routes),
    ).start()
    try:
        _drop(shared_data, ward, "a.xml")
        _drop(shared_data, clinic, "b.xml", "vendor/muse/guangxi_teaching_sinus_rhythm.xml")
        gateway.wait_until_processed(2)
        _wait_for(lambda: len(gateway.store_contents()[1]) == 2, "no deliveries", gateway)
        jobs, deliveries = gateway.store_contents()
        source_of = {job.id: job.source for job in jobs}
        assert {(source_of[d.job_id], d.destination) for d in deliveries} == {
            ("ward-7", "ward-inbox"),
            ("clinic", "outbox"),
        }
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
    ward_jobs = [job for job in jobs if job.source == "ward-7"]
    report = gateway.data_dir / "reports" / str(ward_jobs[0].id) / "context.json"
    assert ward_jobs[0].sop_instance_uid in report.read_text()  # the derived UID names it


@needs_dcmtk
def test_kill_9_between_copy_and_commit_loses_and_repeats_nothing(tmp_path, shared_data):
    folder = tmp_path / "carts"
    folder.mkdir()
    gateway = _gateway(tmp_path, f"  - {{path: {folder}, source: ward, poll_interval_s: 0.1}}\n")
    gateway.start()
    spool = gateway.data_dir / "spool"
    try:
        blocker = sqlite3.connect(gateway.data_dir / "gateway.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the job cannot be committed while this is held
        _drop(shared_data, folder, "ecg.xml")
        _wait_for(lambda: any(spool.glob("*.ecg")), "the file never reached the spool", gateway)
        gateway.kill_hard()  # copied and fsync'd, its job not committed
        blocker.rollback()
        blocker.close()
        assert _names(folder) == ["ecg.xml"]
        assert gateway.job_counts() == {}

        gateway.start()
        assert gateway.wait_until_processed(1) == {"done": 1}
        _wait_for(lambda: _names(folder) == ["processed"], "the file stayed", gateway)
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
    [job], deliveries = gateway.store_contents()
    assert [d.job_id for d in deliveries] == [job.id]
    assert [p.name for p in spool.iterdir()] == [Path(job.spool_path).name]
    assert _names(folder / "processed") == ["ecg.xml"]


@needs_dcmtk
def test_a_copy_cut_short_by_a_kill_is_removed_at_the_next_start(tmp_path):
    """A kill -9 during the copy into the spool leaves write_atomic's temporary file; the
    next start removes it (nothing was acknowledged) and keeps every finished file."""
    from gateway.durable import write_atomic

    gateway = _gateway(tmp_path, "  []\n")
    spool = gateway.data_dir / "spool"
    spool.mkdir(parents=True)
    write_atomic(spool / "1.2.3.abc.ecg", b"finished")
    (spool / ".1.2.4.def.ecg.4242.139.tmp").write_bytes(b"half a fi")  # as write_atomic names it
    gateway.start()
    try:
        assert sorted(p.name for p in spool.iterdir()) == ["1.2.3.abc.ecg"]
        assert "removed unfinished spool writes of a previous run" in gateway.logs()
    finally:
        gateway.stop_if_running()


@needs_dcmtk
def test_kill_9_between_commit_and_move_loses_and_repeats_nothing(tmp_path, shared_data):
    folder = tmp_path / "carts"
    folder.mkdir()
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the processed folder should be: the move fails")
    settings = f"path: {folder}, source: ward, poll_interval_s: 0.1"
    gateway = _gateway(tmp_path, f"  - {{{settings}, move_to: {blocked}}}\n").start()
    try:
        _drop(shared_data, folder, "ecg.xml")
        assert gateway.wait_until_processed(1) == {"done": 1}  # committed and processed
        _wait_for(lambda: "cannot move a processed file" in gateway.logs(), "no move", gateway)
        gateway.kill_hard()
        assert _names(folder) == ["ecg.xml"]  # committed, not moved

        gateway = _gateway(tmp_path, f"  - {{{settings}}}\n").start()  # the admin fixes it
        _wait_for(lambda: _names(folder) == ["processed"], "the file stayed", gateway)
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
    jobs, deliveries = gateway.store_contents()
    assert len(jobs) == 1 and [d.job_id for d in deliveries] == [jobs[0].id]
    assert _names(gateway.data_dir / "reports") == [str(jobs[0].id)]
