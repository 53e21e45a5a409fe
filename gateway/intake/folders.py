"""Watched folders: carts that write ECG files into a (shared) folder instead of C-STORE.

Each configured folder is polled by its own thread. A file is taken only once it is
complete, by two rules (docs/operations.md, "Watched folders"):
  - names being written are skipped: hidden files and the `ignore` globs (*.tmp, *.part,
    *.partial), so a writer that renames into place is never read half-written;
  - the size, modification time and inode must be unchanged between two polls.
A file still open for writing on another machine cannot be seen from here (SMB and NFS do
not say), so no open-handle check is made; a writer that pauses for longer than a poll
interval mid-file must use the rename convention. A file that changes while being read is
left for the next poll.

Then it is accepted like a C-STORE object (gateway/intake/files.py: spool with fsync, job
committed) and only then moved, deleted or kept. A file that cannot be used goes to
error/ beside a `<name>.error.txt` saying why; a store or disk that is unavailable leaves
it where it is, for the next poll. A kill -9 at any point loses nothing: a file still in
the folder is taken again, and its content hash makes it a duplicate of a committed job.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.config import WatchFolder
from gateway.durable import ensure_dir, fsync_directory, write_durably
from gateway.intake.accept import OUT_OF_RESOURCES, SUCCESS, Intake
from gateway.intake.files import ReceivedFile, accept_file
from gateway.logs import fault

log = logging.getLogger(__name__)

_MB = 1024 * 1024
_ERROR_SUFFIX = ".error.txt"


@dataclass(frozen=True)
class Signature:
    """What must stay the same between two polls for a file to count as complete."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> Signature:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


class KeptFiles:
    """With `after: keep`, the files already taken, remembered on disk by name, size,
    mtime and content hash, so a restart takes none of them again (and reads none of them
    again while they are unchanged). One JSON line per file, appended and fsync'd."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, tuple[int, int, str]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self._entries[entry["name"]] = (entry["size"], entry["mtime_ns"], entry["sha"])
                except (ValueError, KeyError, TypeError):
                    continue  # the last line of a write cut short by a crash

    def is_taken(self, name: str, sig: Signature) -> bool:
        entry = self._entries.get(name)
        return entry is not None and entry[:2] == (sig.size, sig.mtime_ns)

    def sha_of(self, name: str) -> str | None:
        entry = self._entries.get(name)
        return entry[2] if entry else None

    def remember(self, name: str, sig: Signature, sha: str) -> None:
        self._entries[name] = (sig.size, sig.mtime_ns, sha)
        line = json.dumps({"name": name, "size": sig.size, "mtime_ns": sig.mtime_ns, "sha": sha})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def forget_missing(self, present: set[str]) -> None:
        """Drop files no longer in the folder, rewriting the list in one rename."""
        gone = set(self._entries) - present
        if not gone:
            return
        for name in gone:
            del self._entries[name]
        lines = [
            json.dumps({"name": n, "size": e[0], "mtime_ns": e[1], "sha": e[2]})
            for n, e in self._entries.items()
        ]
        write_durably(self.path, "".join(f"{line}\n" for line in lines).encode())


class FolderWatcher:
    """One watched folder; `poll` takes every file that has become complete."""

    def __init__(self, folder: WatchFolder, intake: Intake, state_dir: Path) -> None:
        self.folder = folder
        self.intake = intake
        self._pending: dict[str, Signature] = {}
        # Committed files that could not be moved or deleted: only that is tried again (a
        # re-read would be a duplicate, audited again, on every poll).
        self._undisposed: dict[str, tuple[Signature, str]] = {}
        self._kept: KeptFiles | None = None
        if folder.after == "keep":
            key = hashlib.sha256(str(folder.path.resolve()).encode()).hexdigest()[:16]
            self._kept = KeptFiles(state_dir / f"{folder.source}-{key}.kept.jsonl")
        self._missing_logged = False

    def poll(self, stop: threading.Event | None = None) -> int:
        """Take the files complete since the last poll; returns how many were taken.
        A set `stop` ends the poll after the file in hand."""
        listing = self._listing()
        if listing is None:
            return 0
        taken = 0
        for name, sig in sorted(listing.items(), key=lambda item: item[1].mtime_ns):
            if stop is not None and stop.is_set():
                return taken
            if self._pending.get(name) != sig:
                self._pending[name] = sig  # new or still changing: look again next poll
                continue
            if self._kept is not None and self._kept.is_taken(name, sig):
                continue
            undisposed = self._undisposed.get(name)
            if undisposed is not None and undisposed[0] == sig:
                self._dispose(name, sig, undisposed[1])
                continue
            try:
                taken += self._take(name, sig)
            except Exception as exc:  # noqa: BLE001 - one file's fault must not hold up the rest
                log.error(
                    "watched folder %s: taking a file failed, left for the next poll: %s",
                    self.folder.source,
                    fault(exc, stack=True),
                )
        self._pending = {n: s for n, s in self._pending.items() if n in listing}
        self._undisposed = {n: u for n, u in self._undisposed.items() if n in listing}
        if self._kept is not None:
            self._kept.forget_missing(set(listing))
        return taken

    def _listing(self) -> dict[str, Signature] | None:
        """Regular files directly in the folder that are not being written by name."""
        try:
            entries = list(os.scandir(self.folder.path))
        except OSError as exc:
            if not self._missing_logged:
                log.error("watched folder %s (%s): %s", self.folder.source, self.folder.path, exc)
                self._missing_logged = True
            return None
        if self._missing_logged:
            log.info("watched folder %s is readable again", self.folder.source)
            self._missing_logged = False
        listing = {}
        for entry in entries:
            if self._ignored(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since the listing
            if stat.S_ISREG(st.st_mode):
                listing[entry.name] = Signature.of(st)
        return listing

    def _ignored(self, name: str) -> bool:
        return name.startswith(".") or any(fnmatch.fnmatch(name, g) for g in self.folder.ignore)

    def _take(self, name: str, sig: Signature) -> int:
        path = self.folder.path / name
        if sig.size > self.folder.max_file_mb * _MB:
            self.intake.metrics.reject("too-large")
            too_large = f"larger than max_file_mb ({self.folder.max_file_mb:g} MB)"
            self._to_error(name, sig, "too-large", too_large)
            return 0
        try:
            data = path.read_bytes()
            unchanged = Signature.of(path.stat()) == sig
        except OSError as exc:
            log.warning("watched folder %s: cannot read a file: %s", self.folder.source, _why(exc))
            return 0
        if not unchanged or len(data) != sig.size:
            return 0  # written to meanwhile: complete only when it stops changing
        sha = hashlib.sha256(data).hexdigest()
        if self._kept is not None and self._kept.sha_of(name) == sha:
            self._kept.remember(name, sig, sha)  # touched, not changed
            return 0
        received = ReceivedFile(
            data, self.folder.source, f"folder {self.folder.source}", self.folder.format
        )
        outcome = accept_file(self.intake, received)
        if outcome.status == SUCCESS:
            self._dispose(name, sig, sha)
            return 1
        if outcome.status == OUT_OF_RESOURCES:
            return 0  # logged by intake; the file waits in the folder for the next poll
        self._to_error(name, sig, outcome.reason or "refused", outcome.comment or "")
        return 0

    def _dispose(self, name: str, sig: Signature, sha: str) -> None:
        """The job is committed: now, and only now, the file may leave the folder."""
        path = self.folder.path / name
        try:
            if self.folder.after == "move":
                _move_durably(path, self.folder.processed_dir)
            elif self.folder.after == "delete":
                path.unlink()
                fsync_directory(self.folder.path)
            else:
                assert self._kept is not None
                self._kept.remember(name, sig, sha)
        except OSError as exc:
            # Committed already: the next poll tries again (after a restart, the file is
            # found again as a duplicate). Said once, not on every poll.
            if name not in self._undisposed:
                log.error(
                    "watched folder %s: cannot %s a processed file (sha256=%s): %s",
                    self.folder.source,
                    self.folder.after,
                    sha[:12],
                    _why(exc),
                )
            self._undisposed[name] = (sig, sha)
            return
        if self._undisposed.pop(name, None) is not None:
            log.info(
                "watched folder %s: a processed file could be %s now",
                self.folder.source,
                "moved" if self.folder.after == "move" else "disposed of",
            )

    def _to_error(self, name: str, sig: Signature, reason: str, detail: str) -> None:
        """Move a file that cannot be used to error/, its reason beside it (written first:
        a crash in between leaves the file in place, to be refused again)."""
        path = self.folder.path / name
        error_dir = self.folder.error_dir
        try:
            if Signature.of(path.stat()) != sig:
                return  # still being written: its refusal may have been premature
            ensure_dir(error_dir)
            target = _free_name(error_dir, name)
            sidecar = target.with_name(target.name + _ERROR_SUFFIX)
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            write_durably(sidecar, f"{when} {reason}: {detail}\n".encode())
            _rename_durably(path, target)
        except OSError as exc:
            log.error(
                "watched folder %s: cannot move a file to error/: %s",
                self.folder.source,
                _why(exc),
            )
            return
        log.warning(
            "watched folder %s: a file was refused (%s) and moved to error/: %s",
            self.folder.source,
            reason,
            detail,
        )


class WatchedFolders:
    """The watchers' threads, started beside the DICOM SCP and stopped before the workers."""

    def __init__(self, folders: list[WatchFolder], intake: Intake, state_dir: Path) -> None:
        self._stop = threading.Event()
        self._watchers = [FolderWatcher(folder, intake, state_dir) for folder in folders]
        self._threads = [
            threading.Thread(
                target=self._run, args=(watcher,), name=f"folder-{watcher.folder.source}"
            )
            for watcher in self._watchers
        ]

    def start(self) -> WatchedFolders:
        for thread in self._threads:
            thread.start()
        for watcher in self._watchers:
            folder = watcher.folder
            log.info(
                "watching %s as source %s (format %s, after: %s, every %g s)",
                folder.path,
                folder.source,
                folder.format,
                folder.after,
                folder.poll_interval_s,
            )
        return self

    def stop(self) -> None:
        """Finish the file in hand (its job committed and the file disposed of), then stop."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, watcher: FolderWatcher) -> None:
        while not self._stop.is_set():
            try:
                watcher.poll(self._stop)
            except Exception as exc:  # noqa: BLE001 - a bug must not end the watching for good
                source = watcher.folder.source
                log.error("watched folder %s: poll failed: %s", source, fault(exc, stack=True))
            self._stop.wait(watcher.folder.poll_interval_s)


def start_watching(folders: list[WatchFolder], intake: Intake, data_dir: Path) -> WatchedFolders:
    """Start one polling thread per folder; their state (kept files) is under data_dir."""
    state_dir = data_dir / "watch-folders"
    ensure_dir(state_dir)
    return WatchedFolders(folders, intake, state_dir).start()


def _move_durably(path: Path, directory: Path) -> None:
    ensure_dir(directory)
    _rename_durably(path, _free_name(directory, path.name))


def _rename_durably(path: Path, target: Path) -> None:
    """Rename (or, across file systems, copy durably and delete), both directories fsync'd."""
    try:
        os.rename(path, target)
        fsync_directory(target.parent)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_durably(target, path.read_bytes())
        path.unlink()
    fsync_directory(path.parent)


def _free_name(directory: Path, name: str) -> Path:
    """`name` in `directory`, or `name.1`, `name.2`... when a file of that name is there."""
    target = directory / name
    index = 0
    while target.exists() or target.with_name(target.name + _ERROR_SUFFIX).exists():
        index += 1
        target = directory / f"{name}.{index}"
    return target


def _why(exc: OSError) -> str:
    """An OS error without its file names: carts often name files after the patient."""
    return exc.strerror or type(exc).__name__
