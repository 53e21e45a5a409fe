"""What the gateway audits, one method per event (IHE ATNA, DICOM PS3.15 A.5.3):

| method | DICOM event | when |
|---|---|---|
| instance_received | DICOM Instances Transferred (110104), C | an object acknowledged to its sender |
| exported | Export (110106), R | a report delivered to a destination |
| order_record | Order Record (110109), C U | an order received, updated, cancelled (HL7 or CLI) |
| patient_record | Patient Record (110110), U | a patient's orders updated or merged (ADT) |
| queried | Query (110112), E | a worklist C-FIND answered or refused |
| node_refused | Security Alert (110113) / Node Authentication | association rejected, TLS failure |
| admin_action | Security Alert / Software Configuration or Use of Restricted Function | routes or config reloaded, jobs or deliveries retried |
| report_event | Patient Record (110110), R/U | a report opened, confirmed or corrected, or refused (over-read) |
| application | Application Activity (110100) / Start or Stop | `serve` starts and stops |
| user_authentication | User Authentication (110114) / Login or Logout | a web sign-in (or a refused one), a sign-out |
| user_refused | Security Alert / Use of Restricted Function | a web form refused before it reached the report: a missing or forged CSRF token |

Each record is formatted as an RFC 5424 message, appended to the hash-chained trail and
handed to the forwarder. Recording never raises into the caller's work: a trail that
cannot be written is an ERROR line (intake goes on: an ECG is never refused for it).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
from pathlib import Path

from gateway import metrics as m
from gateway.audit import messages as msg
from gateway.audit.forwarder import Forwarder
from gateway.audit.syslog import NOTICE, WARNING, format_message
from gateway.audit.trail import AuditFile
from gateway.config import AuditConfig, GatewayConfig
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

TRAIL_NAME = "audit-trail.jsonl"
CURSOR_NAME = "sent.json"

RESTRICTED = msg.USE_OF_RESTRICTED_FUNCTION
CONFIGURATION = msg.SOFTWARE_CONFIGURATION


class Auditor:
    """Records audit events for one node (the gateway, or a CLI command on its data)."""

    def __init__(
        self,
        directory: Path,
        config: AuditConfig,
        ae_title: str,
        metrics: Metrics | None = None,
        *,
        forward: bool = False,
    ) -> None:
        """`forward`: run the forwarder (the server does; a CLI command only appends and
        leaves the sending to the running gateway)."""
        self.hostname = socket.getfqdn()
        self.ae_title = ae_title
        self.source = msg.AuditSource(config.source_id or self.hostname, config.enterprise_site_id)
        self.metrics = metrics or Metrics()
        self.trail = AuditFile(directory / TRAIL_NAME)
        self.forwarder = (
            Forwarder(self.trail, directory / CURSOR_NAME, config.syslog, self.metrics)
            if forward
            else None
        )

    @classmethod
    def for_config(
        cls, config: GatewayConfig, metrics: Metrics | None = None, *, forward: bool = False
    ) -> Auditor | None:
        if not config.audit.enabled:
            return None
        return cls(config.audit_dir, config.audit, config.ae_title, metrics, forward=forward)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.forwarder is not None:
            self.forwarder.start()

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.stop()
        self.trail.close()

    def queued(self) -> int:
        """Records not yet taken by the collector (0 without a collector)."""
        if self.forwarder is None or not self.forwarder.has_collector:
            return 0
        return max(0, self.trail.last_seq - self.forwarder.sent_seq)

    # --- events ---------------------------------------------------------------------------

    def instance_received(self, instance: msg.Instance, calling_ae: str, peer_host: str) -> None:
        self._record(
            msg.AuditEvent(
                msg.INSTANCES_TRANSFERRED,
                "C",
                participants=(
                    msg.Participant(calling_ae, msg.SOURCE, True, calling_ae, peer_host),
                    self._gateway(msg.DESTINATION),
                ),
                instance=instance,
            )
        )

    def exported(self, instance: msg.Instance, destination: str) -> None:
        self._record(
            msg.AuditEvent(
                msg.EXPORT,
                "R",
                participants=(
                    self._gateway(msg.SOURCE, requestor=True),
                    msg.Participant(destination, msg.DESTINATION),
                ),
                instance=instance,
            )
        )

    def order_record(
        self, action: str, description: str, patient: msg.Instance, sender: msg.Participant
    ) -> None:
        """An order created (C) or changed (U) by `sender` (an EHR, or an operator);
        `description` names the order and what happened, `patient` its patient only."""
        self._record_change(msg.ORDER_RECORD, action, description, patient, sender)

    def patient_record(
        self, description: str, patient: msg.Instance, sender: msg.Participant
    ) -> None:
        """A patient's orders updated or re-keyed (ADT^A08, ADT^A40) by `sender`."""
        self._record_change(msg.PATIENT_RECORD, "U", description, patient, sender)

    def _record_change(
        self,
        event_id: msg.Code,
        action: str,
        description: str,
        patient: msg.Instance,
        sender: msg.Participant,
        outcome: str = msg.SUCCESS,
    ) -> None:
        self._record(
            msg.AuditEvent(
                event_id,
                action,
                outcome,
                description=description,
                participants=(sender, self._gateway(msg.DESTINATION)),
                instance=patient,
            )
        )

    def operator(self) -> msg.Participant:
        """The user running this process, as the requestor of an action."""
        return _os_user(requestor=True)

    def queried(self, query: msg.Query, calling_ae: str, peer_host: str, refused: str = "") -> None:
        """A C-FIND: the worklist hands out patient data. `refused`: why it was not answered."""
        self._record(
            msg.AuditEvent(
                msg.QUERY,
                "E",
                msg.MINOR_FAILURE if refused else msg.SUCCESS,
                description=refused,
                participants=(
                    msg.Participant(calling_ae, msg.SOURCE, True, calling_ae, peer_host),
                    self._gateway(msg.DESTINATION),
                ),
                query=query,
            )
        )

    def node_refused(self, peer_host: str, calling_ae: str, reason: str) -> None:
        """An association rejected or a TLS handshake that failed: a security alert."""
        self._record(
            msg.AuditEvent(
                msg.SECURITY_ALERT,
                "E",
                msg.MINOR_FAILURE,
                msg.NODE_AUTHENTICATION,
                reason,
                (
                    msg.Participant(calling_ae or peer_host, None, True, calling_ae, peer_host),
                    self._gateway(None),
                ),
            )
        )

    def admin_action(self, kind: msg.Code, description: str) -> None:
        """An operator's action (retry, reload), by the user running this process."""
        self._record(
            msg.AuditEvent(
                msg.SECURITY_ALERT,
                "E",
                event_type=kind,
                description=description,
                participants=(_os_user(requestor=True), self._gateway(None)),
            )
        )

    def report_event(
        self,
        user_id: str,
        instance: msg.Instance,
        action: str,
        description: str,
        success: bool = True,
    ) -> None:
        """A user read ("R") or changed ("U": confirmed, corrected) a report in the
        over-read application, or was refused it (`success` False, `description` why)."""
        user = msg.Participant(user_id, None, True)
        outcome = msg.SUCCESS if success else msg.MINOR_FAILURE
        self._record_change(msg.PATIENT_RECORD, action, description, instance, user, outcome)

    def application(self, started: bool) -> None:
        self._record(
            msg.AuditEvent(
                msg.APPLICATION_ACTIVITY,
                "E",
                event_type=msg.APPLICATION_START if started else msg.APPLICATION_STOP,
                participants=(self._gateway(msg.APPLICATION), _os_user(msg.APPLICATION_LAUNCHER)),
            )
        )

    def user_authentication(self, user_id: str, address: str, login: bool, problem: str) -> None:
        """A web user signing in (`problem` empty) or refused, or signing out."""
        self._record(
            msg.AuditEvent(
                msg.USER_AUTHENTICATION,
                "E",
                msg.MINOR_FAILURE if problem else msg.SUCCESS,
                msg.LOGIN if login else msg.LOGOUT,
                problem,
                (msg.Participant(user_id, None, True, "", address), self._gateway(None)),
            )
        )

    def user_refused(self, user_id: str, address: str, reason: str) -> None:
        """A signed-in (or anonymous) web user's request refused, and why (no patient data)."""
        self._record(
            msg.AuditEvent(
                msg.SECURITY_ALERT,
                "E",
                msg.MINOR_FAILURE,
                msg.USE_OF_RESTRICTED_FUNCTION,
                reason,
                (msg.Participant(user_id, None, True, "", address), self._gateway(None)),
            )
        )

    # --- the record -----------------------------------------------------------------------

    def _gateway(self, role: msg.Code | None, requestor: bool = False) -> msg.Participant:
        return msg.Participant(
            f"ecg-gateway@{self.hostname}", role, requestor, self.ae_title, self.hostname
        )

    def _record(self, event: msg.AuditEvent) -> None:
        severity = NOTICE if event.outcome == msg.SUCCESS else WARNING
        text = format_message(
            msg.to_xml(event, self.source),
            hostname=self.hostname,
            procid=os.getpid(),
            severity=severity,
            time=event.time,
        )
        try:
            self.trail.append(text)
        except OSError as exc:
            log.error("cannot write the audit trail %s: %s", self.trail.path, exc)
            return
        # The forwarder is not woken: it syncs and sends once a second, so records cost
        # the collector one fsync a second, not one beside each intake's own.
        self.metrics.inc(m.AUDIT_RECORDS)


def _os_user(role: msg.Code | None = None, requestor: bool = False) -> msg.Participant:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return msg.Participant(user, role, requestor)
