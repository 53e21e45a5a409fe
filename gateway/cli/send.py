"""`ecg-gateway send`: a C-STORE client for users and tests.

Each file is sent as stored (pynetdicom streams the file's own encoding, no re-encoding),
in its own SOP class and transfer syntax, over one association per batch of files.
"""

from __future__ import annotations

import argparse
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config
from pynetdicom.presentation import build_context

log = logging.getLogger(__name__)

_MAX_CONTEXTS = 128  # presentation contexts per association (PS3.8: odd IDs 1..255)
_config.LOG_HANDLER_LEVEL = "none"
# Stream each file's dataset bytes as stored instead of decoding and re-encoding it:
# faster, and a damaged file reaches the peer as it is (which the intake tests need).
_config.STORE_SEND_CHUNKED_DATASET = True


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("send", help="send DICOM files with C-STORE and print each status")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=11112)
    p.add_argument("--aet", default="ECGSEND", help="calling AE title (default ECGSEND)")
    p.add_argument("--called-aet", default="ECGGW", help="called AE title (default ECGGW)")
    p.add_argument("--tls-ca", type=Path, help="use TLS; verify the gateway against this CA")
    p.add_argument("--tls-cert", type=Path, help="client certificate (PEM) for mutual TLS")
    p.add_argument("--tls-key", type=Path, help="client private key (PEM) for mutual TLS")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tls = client_tls_context(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    results = send_files(args.files, args.host, args.port, args.aet, args.called_aet, tls)
    for result in results:
        status = f"0x{result.status:04X}" if result.status is not None else "------"
        verdict = "OK    " if result.ok else "FAILED"
        print(
            f"{verdict} {status} {result.path}" + (f": {result.message}" if result.message else "")
        )
    return 0 if all(r.ok for r in results) else 1


@dataclass(frozen=True)
class SendResult:
    path: Path
    status: int | None
    message: str = ""

    @property
    def ok(self) -> bool:
        # Warning statuses (0x0001, 0xBxxx) still mean the object was stored.
        return self.status is not None and (
            self.status in (0x0000, 0x0001) or self.status >> 12 == 0xB
        )


@dataclass(frozen=True)
class _Outgoing:
    path: Path
    sop_class_uid: str
    transfer_syntax: str


def send_files(
    paths: list[Path],
    host: str,
    port: int,
    calling_aet: str = "ECGSEND",
    called_aet: str = "ECGGW",
    tls: ssl.SSLContext | None = None,
    timeout_s: float = 30.0,
) -> list[SendResult]:
    """Send each file; one result per file, in order. Never raises for a bad file or peer."""
    results: dict[Path, SendResult] = {}
    outgoing: list[_Outgoing] = []
    for path in paths:
        item = _describe(path)
        if isinstance(item, SendResult):
            results[path] = item
        else:
            outgoing.append(item)
    for batch in _batches(outgoing):
        for result in _send_batch(batch, host, port, calling_aet, called_aet, tls, timeout_s):
            results[result.path] = result
    return [results[p] for p in paths]


def client_tls_context(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """TLS 1.2+ client: verifies the server against `ca`, presents `cert` if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(certfile=cert, keyfile=key)
    return context


def _describe(path: Path) -> _Outgoing | SendResult:
    try:
        meta = read_file_meta_info(path)
        sop_class = str(meta.MediaStorageSOPClassUID)
        syntax = str(meta.TransferSyntaxUID)
    except (OSError, InvalidDicomError, AttributeError, ValueError) as exc:
        return SendResult(path, None, f"not a DICOM file: {exc}")
    return _Outgoing(path, sop_class, syntax)


def _batches(items: list[_Outgoing]) -> list[list[_Outgoing]]:
    """Group files so that each association needs at most 128 presentation contexts."""
    batches: list[list[_Outgoing]] = []
    contexts: set[tuple[str, str]] = set()
    for item in items:
        key = (item.sop_class_uid, item.transfer_syntax)
        if not batches or (key not in contexts and len(contexts) == _MAX_CONTEXTS):
            batches.append([])
            contexts = set()
        contexts.add(key)
        batches[-1].append(item)
    return batches


def _send_batch(
    batch: list[_Outgoing],
    host: str,
    port: int,
    calling_aet: str,
    called_aet: str,
    tls: ssl.SSLContext | None,
    timeout_s: float,
) -> list[SendResult]:
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    pairs = sorted({(i.sop_class_uid, i.transfer_syntax) for i in batch})
    contexts = [build_context(sop_class, [syntax]) for sop_class, syntax in pairs]
    tls_args = (tls, host) if tls is not None else None
    try:
        assoc = ae.associate(host, port, contexts, ae_title=called_aet, tls_args=tls_args)
    except (OSError, ssl.SSLError) as exc:
        return [SendResult(i.path, None, f"cannot connect to {host}:{port}: {exc}") for i in batch]
    if not assoc.is_established:
        why = _why_not_established(assoc)
        return [SendResult(i.path, None, f"{why} ({called_aet}@{host}:{port})") for i in batch]
    try:
        return [_store_one(assoc, item) for item in batch]
    finally:
        if assoc.is_established:
            assoc.release()


def _why_not_established(assoc) -> str:
    if assoc.is_rejected:
        return "association rejected"
    if assoc.rejected_contexts and not assoc.accepted_contexts:
        return "not accepted by the peer: no SOP class / transfer syntax of these files"
    return "association failed or aborted"


def _store_one(assoc, item: _Outgoing) -> SendResult:
    if not assoc.is_established:
        return SendResult(item.path, None, "association lost before sending")
    try:
        response = assoc.send_c_store(item.path)
    except ValueError as exc:
        # No accepted context: the peer does not take this SOP class / transfer syntax.
        return SendResult(item.path, None, f"not accepted by the peer: {exc}")
    except (OSError, AttributeError) as exc:
        return SendResult(item.path, None, f"cannot send: {exc}")
    if "Status" not in response:
        return SendResult(item.path, None, "no response (timeout or association aborted)")
    comment = str(response.get("ErrorComment", "") or "")
    return SendResult(item.path, int(response.Status), comment)
