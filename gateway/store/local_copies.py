"""A gateway node's copies of what a shared (PostgreSQL) store holds: received objects
and report files, written here so that decoding and delivery read files as they do with
the embedded store.

Only a cache: everything in it is also in the database, written there by the commit
that made it count, so another node never needs it and a node may lose it at any time
(it is emptied at every start). Report files are copied in from the database, or moved
in from the worker's output once its completion committed, never from an attempt that
did not commit.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path


class LocalCopies:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.reports = root / "reports"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.reports.mkdir(parents=True, exist_ok=True)

    def clear(self) -> None:
        """Start empty: a copy left by an earlier run may be of work another node redid."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.objects.mkdir(parents=True, exist_ok=True)
        self.reports.mkdir(parents=True, exist_ok=True)

    def object_path(self, job_id: int, suffix: str = ".dcm") -> Path:
        """Named by job, with the spool name's suffix (.dcm, or .ecg for a vendor file)."""
        return self.objects / f"{job_id}{suffix}"

    def report_dir(self, name: str) -> Path:
        """A report's copy, by its directory's name (the job id, or the job id and a
        suffix for a package that replaced it: a changed report is never a cache hit)."""
        return self.reports / name

    def write_object(self, job_id: int, suffix: str, content: bytes) -> Path:
        path = self.object_path(job_id, suffix)
        _replace(path, content)
        return path

    def drop_object(self, job_id: int) -> None:
        for path in self.objects.glob(f"{job_id}.*"):
            path.unlink(missing_ok=True)

    def write_report(self, name: str, files: Callable[[], dict[str, bytes]]) -> Path:
        """The job's report directory, filled from `files()` unless it is here already;
        filled under a temporary name and renamed, so a reader never sees half of it."""
        target = self.report_dir(name)
        if target.is_dir():
            return target
        building = self.reports / f".{name}.{os.getpid()}.{time.monotonic_ns()}"
        building.mkdir(parents=True)
        for file_name, content in files().items():
            (building / file_name).write_bytes(content)
        self._move_in(building, target)
        return target

    def adopt_report(self, name: str, produced: Path) -> None:
        """Take the worker's output of a completion that committed as this node's copy."""
        if produced.is_dir():
            self._move_in(produced, self.report_dir(name))

    def _move_in(self, source: Path, target: Path) -> None:
        try:
            os.rename(source, target)
        except OSError:  # another thread put the same (committed) files there first
            shutil.rmtree(source, ignore_errors=True)

    def prune(self, cutoff: float) -> int:
        """Remove report copies not touched since `cutoff` (retention on this node)."""
        count = 0
        for directory in self.reports.glob("*"):
            try:
                if directory.stat().st_mtime < cutoff:
                    shutil.rmtree(directory, ignore_errors=True)
                    count += 1
            except FileNotFoundError:
                continue
        return count


def read_report_files(directory: Path) -> dict[str, bytes]:
    """A report directory's files by name (what the database keeps of it)."""
    if not directory.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def _replace(path: Path, content: bytes) -> None:
    """Written under a temporary name and renamed, so a reader never sees half of it;
    not fsync'd (gateway.durable does that): a cache survives nothing and needs not."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    temporary.write_bytes(content)
    os.replace(temporary, path)
