"""A test double for an object that kills the helper process processing it, every time
(as a crash in native code would), and for one that never returns: stands in for gateway.processing.job.process_jobs
and must be importable by the spawned helper process, hence a module of its own."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gateway.processing.findings import Additions
from gateway.processing.job import JobResult, process_jobs
from gateway.store import Job
from model.engine import EngineChoice

POISON_UID = "1.2.826.0.1.3680043.10.543.666"
HANGING_UID = "1.2.826.0.1.3680043.10.543.667"


def process_jobs_or_die(
    jobs: list[Job], reports_dir: Path, choice: EngineChoice, additions: Additions | None = None
) -> list[JobResult]:
    """Die like a segfault on the poison object; process everything else for real."""
    if any(job.sop_instance_uid == POISON_UID for job in jobs):
        os._exit(139)
    if any(job.sop_instance_uid == HANGING_UID for job in jobs):
        time.sleep(3600)  # as a decoder stuck in a loop would
    return process_jobs(jobs, reports_dir, choice, additions)
