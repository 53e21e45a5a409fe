"""The site's alert command: run for each event an operator must act on, a job that
failed for good or a delivery given up, so an acknowledged ECG that will not reach the
EHR reaches a person and not only the log.

The event travels in environment variables (ECG_GATEWAY_EVENT, ECG_GATEWAY_SUBJECT: the
SOP Instance UID, ECG_GATEWAY_DETAIL: the job or delivery, ECG_GATEWAY_REASON), not on
the command line, which every user of the host can read in `ps`; the reasons are the
ones the store keeps, already free of patient data. The command runs in the background
with a timeout; if it fails, the log says so and the gateway carries on.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

JOB_FAILED = "job-failed"
DELIVERY_DEAD = "delivery-dead"
CRITICAL_NOTICE_DEAD = "critical-notice-dead"  # nobody could be told of a critical ECG
# A critical notice went out but the store keeps refusing to record it: no escalation.
CRITICAL_NOTICE_UNRECORDED = "critical-notice-unrecorded"


@dataclass(frozen=True)
class Alert:
    event: str  # JOB_FAILED | DELIVERY_DEAD | CRITICAL_NOTICE_DEAD | ..._UNRECORDED
    subject: str  # the SOP Instance UID
    detail: str  # "job 12" or "delivery 34 to ehr-fhir"
    reason: str


class AlertHook:
    """Runs `command` (an argv list; empty: no hook) once per alert, in its own thread."""

    def __init__(self, command: tuple[str, ...] = (), timeout_s: float = 30.0) -> None:
        self.command = tuple(command)
        self.timeout_s = timeout_s

    def send(self, alert: Alert) -> threading.Thread | None:
        """Start the command for `alert`; the thread is returned so tests can wait on it."""
        if not self.command:
            return None
        thread = threading.Thread(target=self._run, args=(alert,), name="alert", daemon=True)
        thread.start()
        return thread

    def _run(self, alert: Alert) -> None:
        env = {
            **os.environ,
            "ECG_GATEWAY_EVENT": alert.event,
            "ECG_GATEWAY_SUBJECT": alert.subject,
            "ECG_GATEWAY_DETAIL": alert.detail,
            "ECG_GATEWAY_REASON": alert.reason,
        }
        try:
            done = subprocess.run(
                self.command, env=env, timeout=self.timeout_s, capture_output=True, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("alert command for %s (%s) failed: %s", alert.event, alert.detail, exc)
            return
        if done.returncode != 0:
            log.warning(
                "alert command for %s (%s) exited %d", alert.event, alert.detail, done.returncode
            )
