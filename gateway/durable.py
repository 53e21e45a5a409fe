"""Files that survive a crash or a power cut: the one way the gateway writes what it must
not lose (the spool, report packages, the file outbox, the counters).

Durable means: data written to a temporary file and fsync'd, renamed into place (readers
see the old file or the new one, never half of one), and the directory fsync'd so the
rename itself survives.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_UNFINISHED = ".{name}.{pid}.{thread}.tmp"
# A file outbox's unfinished writes older than this are a killed writer's: a live one is
# stopped at its destination's timeout_s (at most 120 s) and its start (30 s).
_STALE_UNFINISHED_S = 600.0


def write_atomic(path: Path, data: bytes, unfinished_in: Path | None = None) -> None:
    """Replace `path` with `data` in one rename, the data on disk before the rename; the
    temporary file is written in `unfinished_in` (the same file system), else beside it."""
    tmp = (unfinished_in or path.parent) / _UNFINISHED.format(
        name=path.name, pid=os.getpid(), thread=threading.get_ident()
    )
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_durably(path: Path, data: bytes) -> Path:
    """Write `data` to `path` so that it survives a crash once this returns."""
    write_atomic(path, data)
    fsync_directory(path.parent)
    return path


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    """Write `files` (name -> content) into `directory`, each atomically, then make their
    entries durable: the file outbox's writes, done in a process of its own (so that a
    hung network file system can be given up on). The directory is opened first, so a
    mount that hangs holds the writer there, before any file is begun; a missing one is
    created. The temporary files are written outside it (`unfinished_folder`): a writer
    killed mid-write leaves no partial file where a collector picks files up."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY)
    try:
        unfinished = unfinished_folder(directory)
        _remove_stale_unfinished(unfinished)
        for name, data in files.items():
            write_atomic(directory / name, data, unfinished_in=unfinished)
        os.fsync(fd)
    finally:
        os.close(fd)


def unfinished_folder(directory: Path) -> Path:
    """Where a file outbox's temporary files are written, created if missing: the sibling
    `.<name>.partial` when it can be on the same file system (a rename cannot cross one),
    else, for a mount point or a parent the gateway may not write, `.partial` inside."""
    sibling = directory.parent / f".{directory.name}.partial"
    if os.stat(directory.parent).st_dev == os.stat(directory).st_dev:
        try:
            sibling.mkdir(exist_ok=True)
            return sibling
        except OSError:
            pass
    inside = directory / ".partial"
    inside.mkdir(exist_ok=True)
    return inside


def _remove_stale_unfinished(folder: Path) -> None:
    """Delete the temporary files of writers killed mid-write (older than any live one)."""
    pattern = _UNFINISHED.format(name="*", pid="*", thread="*")
    before = time.time() - _STALE_UNFINISHED_S
    for path in folder.glob(pattern):
        try:
            if path.stat().st_mtime < before:
                path.unlink()
        except FileNotFoundError:
            pass  # another writer removed it


def ensure_dir(directory: Path) -> None:
    """Create `directory` (and parents) and make its entry durable."""
    directory.mkdir(parents=True, exist_ok=True)
    fsync_directory(directory.parent)


def fsync_directory(directory: Path) -> None:
    """Make the renames and new entries in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_unfinished_writes(directory: Path) -> int:
    """Delete the temporary files of writes a killed process never renamed into place; only
    safe while no other process writes there (the server holds the data directory's lock).
    Returns how many there were."""
    pattern = _UNFINISHED.format(name="*", pid="*", thread="*")
    removed = 0
    for path in directory.glob(pattern):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
