"""The spool: received objects on disk, made durable before the sender hears 'success'.

Durable means: data written to a temporary file and fsync'd, renamed into place, and the
directory fsync'd so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_valid_uid(uid: str) -> bool:
    """DICOM UID syntax (PS3.5 9.1); also what makes a UID safe inside a file name."""
    return 0 < len(uid) <= 64 and bool(_UID.match(uid))


def spool_name(sop_instance_uid: str, content_sha256: str) -> str:
    """One name per (UID, content): a resend of the same bytes lands on the same file."""
    if not is_valid_uid(sop_instance_uid):
        raise ValueError("not a valid DICOM UID")
    return f"{sop_instance_uid}.{content_sha256[:16]}.dcm"


def ensure_dir(directory: Path) -> None:
    """Create `directory` (and parents) and make its entry durable."""
    directory.mkdir(parents=True, exist_ok=True)
    _fsync_dir(directory.parent)


def write_durably(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` to `directory/name` so that it survives a crash once this returns."""
    path = directory / name
    tmp = directory / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return path


def free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
