"""The spool: received objects on disk, named by UID and content, made durable
(gateway/durable.py) before the sender hears 'success'."""

from __future__ import annotations

import re
import shutil
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


def free_bytes(directory: Path) -> int:
    """Room left on the spool's disk, checked before an object is accepted."""
    return shutil.disk_usage(directory).free
