"""The DICOM SCP: association policy in one place, then small (event, handler) pairs.

In the style of pynetdicom's apps: `build_ae` sets the policy (which presentation
contexts, timeouts, calling-AE allow-list), `tls_context` the PS3.15 TLS settings, and
`start_scp` starts the server with the handlers. Each handler takes the event and
returns a status; the work of accepting an object lives in gateway/intake/accept.py.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import partial

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import (
    ModalityWorklistInformationFind,
    StorageCommitmentPushModel,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from gateway import metrics as m
from gateway.audit import Auditor
from gateway.config import ConfigError, GatewayConfig, TlsConfig
from gateway.intake.accept import (
    KIND_BY_SOP_CLASS,
    SECONDARY_CAPTURE,
    Intake,
    Outcome,
    ReceivedObject,
)
from gateway.intake.dataset_wait import DatasetWait
from gateway.intake.storage_commitment import StorageCommitment, handle_n_action
from gateway.intake.worklist import Worklist, handle_find
from gateway.logs import failure_reason, fault
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

_NATIVE_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
# JPEG baseline only for images: pydicom decodes it with Pillow, which is installed.
_IMAGE_SYNTAXES = [*_NATIVE_SYNTAXES, JPEGBaseline8Bit]
_MAX_PDU_BYTES = 1 << 20  # fewer, larger PDUs: less per-PDU Python work per object
_INTERNAL_ERROR = 0xC211  # pynetdicom's "unhandled exception in the handler"

# pynetdicom's standard handlers log every PDU and DIMSE message; the gateway logs its
# own one line per object (UIDs and hashes only) instead.
_config.LOG_HANDLER_LEVEL = "none"
# Nor the C-FIND identifiers: a worklist query and its answers hold patient data.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False


def transfer_syntaxes(sop_class_uid: str) -> list[str]:
    if KIND_BY_SOP_CLASS.get(sop_class_uid) == SECONDARY_CAPTURE:
        return list(_IMAGE_SYNTAXES)
    return list(_NATIVE_SYNTAXES)


def build_ae(config: GatewayConfig) -> AE:
    """The AE with the gateway's whole association policy; nothing is decided later."""
    ae = AE(ae_title=config.ae_title)
    ae.add_supported_context(Verification, _NATIVE_SYNTAXES)
    for sop_class in KIND_BY_SOP_CLASS:
        ae.add_supported_context(sop_class, transfer_syntaxes(sop_class))
    # The cart is the SCU (N-ACTION to us), the gateway the SCP, sending N-EVENT-REPORT back
    # on the same association: the SOP class's own roles, no role selection needed.
    ae.add_supported_context(StorageCommitmentPushModel, _NATIVE_SYNTAXES)
    if config.worklist.enabled:
        ae.add_supported_context(ModalityWorklistInformationFind, _NATIVE_SYNTAXES)
    # Any called AE title is accepted: sites give one gateway several titles and route on them.
    ae.require_called_aet = False
    ae.maximum_pdu_size = _MAX_PDU_BYTES
    set_policy(ae, config)
    return ae


def set_policy(ae: AE, config: GatewayConfig) -> None:
    """Who may associate and for how long; changed on a reload (SIGHUP) for the
    associations that start afterwards, never for those in progress."""
    ae.require_calling_aet = list(config.allowed_calling_aes)
    ae.acse_timeout = config.dicom.acse_timeout_s
    ae.dimse_timeout = config.dicom.dimse_timeout_s
    ae.network_timeout = config.dicom.network_timeout_s
    ae.maximum_associations = config.dicom.max_associations


def tls_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """Server TLS per PS3.15 (BCP 195): TLS 1.2 or newer, optional client verification."""
    if not tls.enabled:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=tls.cert, keyfile=tls.key)
        if tls.ca is not None:
            context.load_verify_locations(cafile=tls.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"tls: cannot load cert {tls.cert}, key {tls.key} or ca {tls.ca}: {exc}"
        ) from None
    if tls.require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    elif tls.ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


# --- handlers: each takes the event and returns a status (or only records it) ---------


def handle_echo(event: evt.Event) -> int:
    return 0x0000


def handle_store(event: evt.Event, intake: Intake, metrics: Metrics) -> Dataset:
    try:
        outcome = intake.accept(_received(event))
    except Exception as exc:  # noqa: BLE001 - the SCP must never stop on bad input
        # Say so (never the message: it may quote a value), count it, answer a failure.
        log.error(
            "unexpected error accepting a C-STORE; answered 0x%04X: %s",
            _INTERNAL_ERROR,
            fault(exc, stack=True),
        )
        metrics.reject("internal-error")
        outcome = Outcome(_INTERNAL_ERROR, "internal-error", "internal error")
    metrics.received(sop_class_name(str(event.request.AffectedSOPClassUID)), outcome.status)
    return _status(outcome)


def sop_class_name(uid: str) -> str:
    """The keyword of a storage SOP class the gateway accepts (a bounded label set)."""
    return UID(uid).keyword if uid in KIND_BY_SOP_CLASS else "other"


def handle_accepted(event: evt.Event, metrics: Metrics) -> None:
    """Count the association; a peer offering only unsupported SOP classes is a rejection.

    Peers such as storescu offer every storage class they know, so refused contexts next
    to accepted ones are normal and only logged at debug level.
    """
    metrics.inc(m.ASSOCIATIONS_ACCEPTED)
    assoc = event.assoc
    refused = sorted({str(cx.abstract_syntax) for cx in assoc.rejected_contexts})
    if refused and not assoc.accepted_contexts:
        metrics.reject("sop-class-not-supported")
        log.warning(
            "association from %s offers no supported SOP class (offered %s)",
            assoc.requestor.ae_title,
            ", ".join(refused[:5]) + (" ..." if len(refused) > 5 else ""),
        )
    elif refused:
        log.debug(
            "refused %d unsupported presentation contexts from %s",
            len(refused),
            assoc.requestor.ae_title,
        )


def handle_rejected(event: evt.Event, metrics: Metrics, audit: Auditor | None) -> None:
    calling = event.assoc.requestor.ae_title
    allowed_aes = event.assoc.ae.require_calling_aet  # the policy now, after any reload
    reason = "calling-ae-not-allowed" if allowed_aes and calling not in allowed_aes else "busy"
    metrics.reject(reason)
    log.warning(
        "rejected association from %s at %s: %s",
        calling,
        event.assoc.requestor.address,
        reason,
    )
    if audit is not None:
        audit.node_refused(
            event.assoc.requestor.address, calling, f"association rejected: {reason}"
        )


def _received(event: evt.Event) -> ReceivedObject:
    request = event.request
    file_bytes = event.encoded_dataset(include_meta=True)
    dataset_length = len(request.DataSet.getbuffer())
    requestor = event.assoc.requestor
    return ReceivedObject(
        sop_class_uid=str(request.AffectedSOPClassUID),
        sop_instance_uid=str(request.AffectedSOPInstanceUID),
        file_bytes=file_bytes,
        dataset_offset=len(file_bytes) - dataset_length,
        calling_ae=requestor.ae_title,
        called_ae=requestor.primitive.called_ae_title if requestor.primitive else "",
        peer=f"{requestor.address}:{requestor.port}",
    )


def _status(outcome: Outcome) -> Dataset:
    status = Dataset()
    status.Status = outcome.status
    if outcome.comment:
        status.ErrorComment = outcome.comment[:64]  # LO: at most 64 characters
    return status


# --- the server -------------------------------------------------------------------------


class GatewayServer(ThreadedAssociationServer):
    """pynetdicom's server plus two checks it lacks, made before any DICOM is read.

    The source-address allow-list is checked first, so a disallowed host never even gets
    a TLS handshake; the handshake then runs with a timeout and its failures are counted
    (pynetdicom would drop them silently).
    """

    def __init__(
        self, *args, allowed_networks: list, metrics: Metrics, audit: Auditor | None, **kwargs
    ) -> None:
        self.allowed_networks = allowed_networks
        self.metrics = metrics
        self.audit = audit
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = self.socket.accept()
        if not self._address_allowed(address[0]):
            self.metrics.reject("address-not-allowed")
            log.warning("refused connection from %s: address not in allowed_addresses", address[0])
            self._audit_refusal(address[0], "address not in allowed_addresses")
            _close(client)
            raise OSError("address not allowed")
        # pynetdicom writes a response in several small sends; with Nagle on, each
        # C-STORE response waits for the peer's delayed ACK (~40 ms per object).
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is None:
            return client, address
        client.settimeout(self.ae.network_timeout)
        try:
            return self.ssl_context.wrap_socket(client, server_side=True), address
        except (ssl.SSLError, OSError) as exc:
            self.metrics.reject("tls-handshake-failed")
            log.warning("TLS handshake with %s failed: %s", address[0], failure_reason(exc))
            self._audit_refusal(address[0], f"TLS handshake failed: {type(exc).__name__}")
            _close(client)
            raise

    def _audit_refusal(self, host: str, reason: str) -> None:
        if self.audit is not None:
            self.audit.node_refused(host, "", reason)

    def _address_allowed(self, host: str) -> bool:
        if not self.allowed_networks:
            return True
        address = ipaddress.ip_address(host)
        return any(address in network for network in self.allowed_networks)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


@dataclass
class RunningScp:
    ae: AE
    server: GatewayServer
    thread: threading.Thread
    dataset_wait: DatasetWait | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def apply_policy(self, config: GatewayConfig) -> None:
        """`config`'s allow-lists, timeouts and TLS for new associations (a reload);
        those in progress go on as they started."""
        context = tls_context(config.tls)  # first: a bad certificate changes nothing
        set_policy(self.ae, config)
        if self.dataset_wait is not None:
            self.dataset_wait.wait_s = config.dicom.dataset_wait_s
        self.server.allowed_networks = _networks(config)
        self.server.ssl_context = context

    @property
    def listening(self) -> bool:
        return self.thread.is_alive() and self.server.socket.fileno() != -1

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting, let associations in progress finish for `grace_s`, then abort."""
        self.server.shutdown()
        deadline = time.monotonic() + grace_s
        while self.server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        self.ae.shutdown()
        self.thread.join(timeout=5)


def start_scp(config: GatewayConfig, intake: Intake, metrics: Metrics) -> RunningScp:
    """The gateway's SCP: C-ECHO, C-STORE into intake, the worklist's C-FIND when it is
    on, and association events counted (and audited, with intake's auditor)."""
    dataset_wait = DatasetWait(config.dicom.dataset_wait_s, metrics)
    handlers = [
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [intake, metrics]),
        (evt.EVT_N_ACTION, handle_n_action, [StorageCommitment(config, intake.store)]),
        (evt.EVT_ACCEPTED, handle_accepted, [metrics]),
        (evt.EVT_REJECTED, handle_rejected, [metrics, intake.audit]),
        dataset_wait.handler(),
    ]
    if config.worklist.enabled:
        worklist = Worklist(intake.store, config.worklist, metrics, intake.audit)
        handlers.append((evt.EVT_C_FIND, handle_find, [worklist]))
    running = start_server(config, handlers, metrics, intake.audit)
    running.dataset_wait = dataset_wait
    return running


def start_server(
    config: GatewayConfig, handlers: list[tuple], metrics: Metrics, audit: Auditor | None = None
) -> RunningScp:
    """An association server with the gateway's policy (contexts, TLS, allow-lists) and the
    given (event, handler) pairs; start_scp's, and the intake bench's baseline."""
    ae = build_ae(config)
    server = ae.make_server(
        (config.bind_address, config.port),
        evt_handlers=handlers,
        ssl_context=tls_context(config.tls),
        server_class=GatewayServer,
        allowed_networks=_networks(config),
        metrics=metrics,
        audit=audit,
    )
    # As AE.start_server does for its own servers, so that AE.shutdown() stops this one too.
    ae._servers.append(server)
    thread = threading.Thread(
        target=partial(server.serve_forever, poll_interval=0.2), name="dicom-scp", daemon=True
    )
    thread.start()
    return RunningScp(ae=ae, server=server, thread=thread)


def _networks(config: GatewayConfig) -> list:
    return [ipaddress.ip_network(a, strict=False) for a in config.allowed_addresses]
