"""Retention: received objects, report packages and outbox files older than the
configured number of days are deleted; nothing that still has to be processed or
delivered is ever touched."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.store import Store

log = logging.getLogger(__name__)

_DAY_S = 86400.0


@dataclass(frozen=True)
class PurgeResult:
    jobs: int
    outbox_files: int


def purge(
    store: Store, outbox_dirs: list[Path], retention_days: int, now: float | None = None
) -> PurgeResult:
    """Delete what retention allows and say how much went."""
    now = time.time() if now is None else now
    cutoff = now - retention_days * _DAY_S
    jobs = _purge_jobs(store, cutoff, now)
    store.prune_local_copies(cutoff)  # a shared store's cached copies on this node
    files = sum(_purge_outbox(directory, cutoff) for directory in outbox_dirs)
    if jobs or files:
        log.info(
            "retention: removed the files of %d jobs and %d outbox files older than %d days",
            jobs,
            files,
            retention_days,
        )
    return PurgeResult(jobs, files)


def _purge_jobs(store: Store, cutoff: float, now: float) -> int:
    """Spool file and report package of done jobs with every delivery finished."""
    count = 0
    while True:
        jobs = store.purgeable_jobs(cutoff)
        if not jobs:
            return count
        for job in jobs:
            if job.spool_path:
                Path(job.spool_path).unlink(missing_ok=True)
            if job.report_dir:
                for directory in _report_dirs(Path(job.report_dir), job.id):
                    shutil.rmtree(directory, ignore_errors=True)
            store.mark_job_files_purged(job.id, now=now)
            count += 1


def _report_dirs(current: Path, job_id: int) -> list[Path]:
    """The job's report package and any earlier one a late order replaced (reports/<job>
    before reports/<job>-order<order>, kept then for deliveries in flight): each holds
    patient data that retention must remove."""
    parent = current.parent
    return [current, parent / str(job_id), *parent.glob(f"{job_id}-order*")]


def _purge_outbox(directory: Path, cutoff: float) -> int:
    """Outbox files are finished output: their age alone decides."""
    if not directory.is_dir():
        return 0
    count = 0
    for path in directory.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                count += 1
        except FileNotFoundError:
            continue
    return count
