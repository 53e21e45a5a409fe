"""Real network peers for the delivery tests.

- FhirTestServer: a small HTTP(S) FHIR endpoint that judges every transaction as
  strictly as a real server would (fhir.resources R4B parsing, transaction rules,
  conditional creates, references that resolve and point at allowed types, the
  required status codes), keeps what it created, and can be told to answer 5xx,
  to be slow, to trickle its answer, or to demand credentials; `port` restarts it where
  it was (a server that was down and is back).
- Hl7TestPeer: an MLLP receiver built on the `hl7` package (another implementation
  than ours) that answers each message as scripted: AA, AE, AR, a wrong MSA-2,
  dropping the connection, answering late or trickling the answer; `port` as for the
  FHIR server.
- DcmtkArchive: dcmtk's storescp as the archive a `dicom` route stores to, keeping
  each received object as a file.
- make_pki: a CA, a server and a client certificate made with the openssl tool.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, unquote

import hl7
import hl7.mllp
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.reference import Reference
from pydantic import BaseModel, ValidationError
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_STORE

# Required bindings a server enforces (R4 value sets).
_STATUS_CODES = {
    "DiagnosticReport": {
        "registered",
        "partial",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "appended",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    "Observation": {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    "ServiceRequest": {
        "draft",
        "active",
        "on-hold",
        "revoked",
        "completed",
        "entered-in-error",
        "unknown",
    },
    "Media": {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    },
}


class _Rejected(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class FhirTestServer:
    """Start with `start()`; `base_url` is the FHIR base. Thread-safe counters."""

    tls: ssl.SSLContext | None = None
    required_authorization: str | None = None
    fail_status: int | None = None
    fail_message: str = "server unavailable"
    retry_after: str | None = None  # the Retry-After header sent with fail_status
    delay_s: float = 0.0
    # > 0: its answer's first bytes one a second (each within a client's read timeout) for
    # this many seconds, then the connection dropped: a server that never finishes answering
    trickle_for_s: int = 0
    port: int = 0  # 0: any free port; a fixed one brings a stopped server back at its URL
    transactions: list[dict] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    created: dict[str, dict[str, dict]] = field(default_factory=dict)
    report_arrivals: list[str] = field(default_factory=list)
    requests: int = 0

    def start(self) -> FhirTestServer:
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                server._handle(self)

            def log_message(self, *args) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = "localhost" if self.tls is not None else "127.0.0.1"
        return f"{scheme}://{host}:{self._httpd.server_address[1]}/fhir"

    def resources(self, resource_type: str) -> list[dict]:
        with self._lock:
            return list(self.created.get(resource_type, {}).values())

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests += 1
        body = request.rfile.read(int(request.headers.get("Content-Length", 0)))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.trickle_for_s:
            try:
                for byte in b"HTTP/1.1 200 OK\r\n"[: self.trickle_for_s]:
                    request.wfile.write(bytes([byte]))
                    time.sleep(1)
            except OSError:  # the client gave up (over TLS: an SSLEOFError), as it should
                pass
            request.close_connection = True
            return
        try:
            if self.fail_status is not None:
                raise _Rejected(self.fail_status, self.fail_message)
            self._check_request(request)
            reply = self._transaction(body)
        except _Rejected as exc:
            with self._lock:
                self.rejections.append(str(exc))
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            _reply(request, exc.status, _outcome(str(exc)), headers)
            return
        _reply(request, 200, reply)

    def _check_request(self, request: BaseHTTPRequestHandler) -> None:
        wanted = self.required_authorization
        if wanted is not None and request.headers.get("Authorization") != wanted:
            raise _Rejected(401, "missing or wrong credentials")
        if request.path.rstrip("/") != "/fhir":
            raise _Rejected(404, f"transactions go to the base URL, not {request.path}")
        if request.headers.get("Content-Type", "").split(";")[0] != "application/fhir+json":
            raise _Rejected(415, "Content-Type must be application/fhir+json")

    def _transaction(self, body: bytes) -> dict:
        try:
            bundle = Bundle.model_validate_json(body)
        except ValidationError as exc:
            raise _Rejected(400, f"invalid Bundle: {exc.errors()[0]['msg']}") from None
        if bundle.type != "transaction":
            raise _Rejected(400, f"Bundle.type is {bundle.type}, not transaction")
        entries = bundle.entry or []
        types = {entry.fullUrl: entry.resource.get_resource_type() for entry in entries}
        for entry in entries:
            self._check_entry(entry, types)
        with self._lock:
            return self._apply(json.loads(body))

    def _check_entry(self, entry, types: dict[str, str]) -> None:
        resource = entry.resource
        kind = resource.get_resource_type()
        if not (entry.fullUrl or "").startswith("urn:uuid:"):
            raise _Rejected(400, f"{kind} entry without a urn:uuid fullUrl")
        request = entry.request
        if request is None:
            raise _Rejected(400, f"{kind} entry without request")
        if request.method == "POST" and not request.ifNoneExist:
            raise _Rejected(412, f"{kind} POST without ifNoneExist: a resend would duplicate it")
        if (
            request.method == "PUT"
            and "?" not in request.url
            and request.url != f"{kind}/{resource.id}"
        ):
            raise _Rejected(400, f"{kind} PUT must be a conditional update or name its id")
        status = getattr(resource, "status", None)
        if kind in _STATUS_CODES and status not in _STATUS_CODES[kind]:
            raise _Rejected(422, f"{kind}.status {status!r} is not in the required value set")
        problems = _reference_problems(resource, types, kind)
        if problems:
            raise _Rejected(422, problems[0])

    def _apply(self, bundle: dict) -> dict:
        """Conditional create / update, as a FHIR server does them (under the lock)."""
        ids: dict[str, str] = {}
        responses = []
        for entry in bundle["entry"]:
            resource, request = entry["resource"], entry["request"]
            kind = resource["resourceType"]
            query = request.get("ifNoneExist") or request["url"].partition("?")[2]
            key = unquote(parse_qs(query)["identifier"][0]) if query else None
            store = self.created.setdefault(kind, {})
            existing = next(
                (rid for rid, res in store.items() if key in _identifier_keys(res)), None
            )
            if request["method"] == "PUT" and not query:  # update as create, at a given id
                rid = request["url"].partition("/")[2]
                existing = rid if rid in store else None
                store[rid] = resource
                ids[entry["fullUrl"]] = f"{kind}/{rid}"
                status = "200 OK" if existing else "201 Created"
                responses.append(
                    {"response": {"status": status, "location": f"{kind}/{rid}/_history/1"}}
                )
                continue
            if existing is not None and request["method"] == "POST":
                ids[entry["fullUrl"]] = f"{kind}/{existing}"
                responses.append(
                    {"response": {"status": "200 OK", "location": f"{kind}/{existing}/_history/1"}}
                )
                continue
            rid = existing or str(sum(len(v) for v in self.created.values()) + 1)
            ids[entry["fullUrl"]] = f"{kind}/{rid}"
            store[rid] = resource
            if kind == "DiagnosticReport":
                self.report_arrivals.append(resource["identifier"][0]["value"])
            status = "200 OK" if existing else "201 Created"
            responses.append(
                {"response": {"status": status, "location": f"{kind}/{rid}/_history/1"}}
            )
        _rewrite_references(bundle, ids)
        self.transactions.append(bundle)
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}


def _identifier_keys(resource: dict) -> set[str]:
    return {f"{i.get('system')}|{i.get('value')}" for i in resource.get("identifier", [])}


def _reference_problems(model: BaseModel, types: dict[str, str], path: str) -> list[str]:
    """Every Reference must resolve inside the bundle and point at a type its element allows."""
    problems = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name, None)
        allowed = (
            (info.json_schema_extra or {}).get("enum_reference_types")
            if isinstance(info.json_schema_extra, dict)
            else None
        )
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Reference):
                if item.reference is None:
                    continue
                target = types.get(item.reference)
                if target is None:
                    problems.append(f"{path}.{name}: reference {item.reference} does not resolve")
                elif allowed and target not in allowed and "Resource" not in allowed:
                    problems.append(f"{path}.{name}: may not reference a {target}")
            elif isinstance(item, BaseModel):
                problems.extend(_reference_problems(item, types, f"{path}.{name}"))
    return problems


def _rewrite_references(node, ids: dict[str, str]) -> None:
    """References and (as the transaction rules require) urls naming a bundle entry."""
    if isinstance(node, dict):
        for key in ("reference", "url"):
            if isinstance(node.get(key), str) and node[key] in ids:
                node[key] = ids[node[key]]
        for value in node.values():
            _rewrite_references(value, ids)
    elif isinstance(node, list):
        for value in node:
            _rewrite_references(value, ids)


def _outcome(message: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": message}],
    }


def _reply(
    request: BaseHTTPRequestHandler, status: int, body: dict, headers: dict | None = None
) -> None:
    data = json.dumps(body).encode()
    try:
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/fhir+json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class DcmtkArchive:
    """dcmtk's storescp (AE title ARCHIVE) storing what it receives in `received`."""

    def __init__(self, received: Path, port: int, *options: str) -> None:
        self.received, self.port = received, port
        received.mkdir(parents=True, exist_ok=True)
        command = ["storescp", "-aet", "ARCHIVE", "-od", str(received), *options, str(port)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stdout.read()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"storescp did not listen on {self.port}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Hl7TestPeer:
    """An MLLP receiver from the `hl7` package, answering as `script` says.

    Script items: "AA", "AE", "AR", "CA" (answer with that MSA-1), "wrong-id" (AA for
    another MSH-10), "drop" (close without answering), "delay" (AA after `delay_s`, later
    than a sender's timeout), "trickle" (the AA's first bytes one a second for `delay_s`,
    then the connection dropped). After the script: "AA".
    """

    def __init__(
        self,
        script: list[str] | None = None,
        tls: ssl.SSLContext | None = None,
        port: int = 0,
        delay_s: float = 3.0,
    ):
        self.script = list(script or [])
        self.tls = tls
        self.port = port
        self.delay_s = delay_s
        self.received: list[hl7.Message] = []
        self.connections = 0

    def start(self) -> Hl7TestPeer:
        """Start serving (again, after `stop`, keeping what was received)."""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("MLLP test peer did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def close_connections(self) -> None:
        """Drop every open connection, as an interface engine does with idle ones."""
        self._loop.call_soon_threadsafe(lambda: [w.close() for w in list(self._writers)])

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._writers: set = set()
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        server = await hl7.mllp.start_hl7_server(
            self._client,
            "127.0.0.1",
            self.port,
            encoding="utf-8",
            limit=16 * 1024 * 1024,
            ssl=self.tls,
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            for writer in list(self._writers):
                writer.close()
        # Connection handlers still waiting (a trickle's sleep) end here, not with the loop.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _client(self, reader, writer) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                message = await reader.readmessage()
                self.received.append(message)
                action = self.script.pop(0) if self.script else "AA"
                if action == "drop":
                    writer.close()
                    return
                if action == "delay":
                    await asyncio.sleep(self.delay_s)
                code = "AA" if action in ("wrong-id", "delay", "trickle") else action
                ack = message.create_ack(code, message_id=f"ACK{len(self.received)}")
                if action == "wrong-id":
                    ack.segment("MSA")[2] = "SOMETHING-ELSE"
                if code != "AA":
                    ack.segment("MSA").append(
                        f"could not file the result for patient "
                        f"{message.extract_field('PID', 1, 3, 1, 1)}"
                    )
                if action == "trickle":
                    for byte in (b"\x0b" + str(ack).encode())[: int(self.delay_s)]:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(1)
                    writer.close()
                    return
                writer.writemessage(ack)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._writers.discard(writer)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def server_context(self, require_client_cert: bool) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.load_verify_locations(self.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def make_pki(directory: Path, server_names: str = "DNS:localhost,IP:127.0.0.1") -> Pki:
    """A private CA that signs a server (`server_names`, a subjectAltName) and a client
    certificate, plus an unrelated CA to show that verification is really on."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    for name in ("ca", "other-ca"):
        openssl(
            "req",
            "-x509",
            *_EC_KEY,
            "-nodes",
            "-days",
            "2",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.pem",
            "-subj",
            f"/CN=test {name}",
        )
    for name, extension in (
        ("server", f"subjectAltName={server_names}"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl(
            "req",
            *_EC_KEY,
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
        (directory / f"{name}.ext").write_text(extension + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.pem",
            "-extfile",
            f"{name}.ext",
        )
    return Pki(
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
        directory / "other-ca.pem",
    )


def announce_a_dataset_and_send_none(
    port: int,
    sop_class_uid: str,
    timeout_s: float,
    calling_ae: str = "CART1",
    sop_instance_uid: str | None = None,
) -> C_STORE | None:
    """A broken sender (pynetdicom's SCU with an empty in-memory dataset): the C-STORE
    command announces a dataset (Command Data Set Type 0x0001) and no data fragment
    follows. The response primitive, or None if none came within `timeout_s`."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(sop_class_uid)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    assoc = ae.associate("127.0.0.1", port)
    if not assoc.is_established:
        return None
    request = C_STORE()
    request.MessageID = 7
    request.AffectedSOPClassUID = sop_class_uid
    request.AffectedSOPInstanceUID = sop_instance_uid or generate_uid()
    request.Priority = 2
    request.DataSet = BytesIO(b"")
    # Paused as send_c_echo pauses it, so the reactor leaves the response to get_msg.
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.001)
    assoc.dimse.send_msg(request, assoc.accepted_contexts[0].context_id)
    _, response = assoc.dimse.get_msg(block=True)
    assoc._reactor_checkpoint.set()
    assoc.abort()
    return response
