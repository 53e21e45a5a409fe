"""POST /upload: devices that push ECG files over HTTP(S) with a bearer token.

    curl --fail -H "Authorization: Bearer $(cat token)" \
         -H "Content-Type: application/octet-stream" \
         --data-binary @ecg.xml http://127.0.0.1:8104/upload

The body is the file itself. 201 {"job_id": N} only once the file is fsync'd in the
spool and its job committed (200 with "duplicate": true for a file received before);
401 without a valid token, 408 for a body slower than `read_timeout_s`, 413 over
`max_mb`, 415 for a body that is not a file (multipart, form or text), 422 for a file
that is not a readable ECG, 503 when the store or the disk cannot take it now (send
again later), 500 for a fault of the gateway's (logged by type). Messages name the
problem, never patient data.

aiohttp serves it (a dependency already, through wfdb): a production HTTP server with
the size limit, keep-alive and header limits built in, and its own event loop in a
thread of its own, which leaves the server's signal handling alone. The stdlib's
http.server is documented as not for production; Starlette would need uvicorn as well.
The blocking intake (fsync, store, decoding) runs in a small thread pool.

aiohttp's request handler is served on a listener of the endpoint's own (AppRunner.server
as the protocol factory, not a TCPSite), so that over TLS each handshake goes through
tls_handshake.TlsFirst: a failed one is logged and counted (`upload-tls-handshake-failed`),
where a TCPSite given the context would let asyncio drop it unlogged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from gateway.config import ConfigError, UploadConfig
from gateway.intake.accept import OUT_OF_RESOURCES, SUCCESS, Intake, Outcome
from gateway.intake.dicom_scp import tls_context
from gateway.intake.files import ReceivedFile, accept_file
from gateway.logs import fault
from gateway.tls_handshake import HandshakeFailures, TlsFirst

log = logging.getLogger(__name__)

_MB = 1024 * 1024
_MIN_TOKEN_CHARS = 16
# Bodies that are files; a form or multipart body is a client mistake, said so with 415.
FILE_TYPES = frozenset(
    {"application/octet-stream", "application/dicom", "application/xml", "text/xml"}
)
_INTAKE_THREADS = 4
UPLOAD_TLS_FAILED = "upload-tls-handshake-failed"  # rejections_total's reason


def read_tokens(config: UploadConfig) -> list[tuple[str, bytes]]:
    """(source, token) of each configured token file, read once at start."""
    tokens = []
    for entry in config.tokens:
        try:
            token = entry.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"upload.tokens: cannot read {entry.token_file}: {exc}") from None
        if len(token) < _MIN_TOKEN_CHARS:
            raise ConfigError(
                f"upload.tokens: the token in {entry.token_file} is shorter than "
                f"{_MIN_TOKEN_CHARS} characters"
            )
        tokens.append((entry.source, token.encode()))
    return tokens


def source_for(authorization: str, tokens: list[tuple[str, bytes]]) -> str | None:
    """The source of the token in an `Authorization: Bearer` header, or None. Every token
    is compared, each in constant time, so the time taken says nothing about any of them."""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    presented = given.strip().encode()
    found = None
    for source, token in tokens:
        if hmac.compare_digest(presented, token) and found is None:
            found = source
    return found


class UploadEndpoint:
    """The HTTP server in its own thread and event loop."""

    def __init__(self, config: UploadConfig, intake: Intake) -> None:
        self.config = config
        self.intake = intake
        self._tokens = read_tokens(config)
        self._max_bytes = int(config.max_mb * _MB)
        self._ssl = tls_context(config.tls)
        self._executor = ThreadPoolExecutor(_INTAKE_THREADS, thread_name_prefix="upload")
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._handshakes: TlsFirst | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="upload")

    def start(self) -> UploadEndpoint:
        app = web.Application(client_max_size=self._max_bytes)
        app.router.add_post("/upload", self._upload)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._thread.start()
        try:
            self._call(self._serve())
        except BaseException:
            self.stop()
            raise
        log.info(
            "upload endpoint on %s://%s:%d/upload (%d tokens, format %s, max %g MB)",
            "https" if self._ssl else "http",
            self.config.bind_address,
            self.config.port,
            len(self._tokens),
            self.config.format,
            self.config.max_mb,
        )
        return self

    async def _serve(self) -> None:
        assert self._runner is not None
        await self._runner.setup()
        handler = self._runner.server
        assert handler is not None
        factory = handler
        if self._ssl is not None:
            failures = HandshakeFailures("upload", UPLOAD_TLS_FAILED, self.intake.metrics)
            factory = self._handshakes = TlsFirst(handler, self._ssl, failures)
        self._listener = await asyncio.get_running_loop().create_server(
            factory, self.config.bind_address, self.config.port
        )

    async def _shutdown(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._handshakes is not None:
            self._handshakes.cancel()
        assert self._runner is not None
        await self._runner.cleanup()

    def stop(self) -> None:
        """Stop listening; uploads in progress finish (their jobs committed) first."""
        if self._runner is not None and self._thread.is_alive():
            self._call(self._shutdown())
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._executor.shutdown(wait=True)
        self._loop.close()

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _upload(self, request: web.Request) -> web.Response:
        source = source_for(request.headers.get("Authorization", ""), self._tokens)
        if source is None:
            self._refused("unauthorized", request)
            return _error(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
        if request.content_type not in FILE_TYPES:
            self._refused("unsupported-media-type", request)
            return _error(
                415,
                f"send the ECG file itself as the body, with Content-Type one of "
                f"{', '.join(sorted(FILE_TYPES))} (got {request.content_type})",
            )
        try:
            if request.content_length is not None and request.content_length > self._max_bytes:
                raise web.HTTPRequestEntityTooLarge(self._max_bytes, request.content_length)
            async with asyncio.timeout(self.config.read_timeout_s):
                data = await request.read()
        except TimeoutError:
            self._refused("body-timeout", request)
            return _error(408, f"the body did not arrive within {self.config.read_timeout_s:g} s")
        except web.HTTPRequestEntityTooLarge:
            self._refused("too-large", request)
            return _error(413, f"the file is larger than the limit of {self.config.max_mb:g} MB")
        if not data:
            return _error(422, "the body is empty")
        peer = f"http {request.remote}"
        received = ReceivedFile(data, source, peer, self.config.format)
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(self._executor, accept_file, self.intake, received)
        except Exception as exc:  # noqa: BLE001 - a fault of the gateway's: answer, stay up
            # Not aiohttp's own handler: it would log the message, which may quote a value.
            log.error("upload from %s: the gateway failed on it: %s", peer, fault(exc, stack=True))
            self.intake.metrics.reject("internal-error")
            return _error(500, "the gateway failed on this file: send it again later")
        return _response(outcome)

    def _refused(self, reason: str, request: web.Request) -> None:
        """Count a refusal by reason, and log who it was (an address, never a token)."""
        self.intake.metrics.reject(reason)
        log.warning("upload from %s refused: %s", request.remote, reason)


def _response(outcome: Outcome) -> web.Response:
    if outcome.status == SUCCESS:
        body = {"job_id": outcome.job_id, "duplicate": outcome.duplicate}
        return web.json_response(body, status=200 if outcome.duplicate else 201)
    if outcome.status == OUT_OF_RESOURCES:
        return _error(503, f"cannot take files now: {outcome.reason}", {"Retry-After": "30"})
    return _error(422, f"{outcome.reason}: {outcome.comment}")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def start_upload(config: UploadConfig, intake: Intake) -> UploadEndpoint | None:
    """The endpoint when `upload.enabled`; ConfigError for an unusable token or TLS file."""
    return UploadEndpoint(config, intake).start() if config.enabled else None
