"""The HL7 v2 order listener: MLLP over TCP (or TLS) on its own port, one message at a
time per connection, each answered with its ACK once order_intake.py has committed it.

The framing is python-hl7's asyncio MLLP stream (hl7.mllp: start block, end block and
carriage return, a size limit), served from an event loop in a thread of its own like
the upload endpoint; the blocking work (store, audit) runs in a small thread pool. A
frame the listener cannot use is answered (AE) or, where there is nothing to answer
(a connection closed mid-frame), logged; the listener itself stays up either way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from hl7.mllp import HL7StreamReader, HL7StreamWriter, InvalidBlockError, start_hl7_server

from gateway.config import OrdersConfig
from gateway.intake.dicom_scp import tls_context
from gateway.intake.hl7_ack import ack
from gateway.intake.order_intake import OrderCallback, OrderIntake
from gateway.intake.order_messages import SEGMENT_SEQUENCE_ERROR, MessageProblem
from gateway.tls_handshake import HANDSHAKE_TIMEOUT_S, HandshakeFailures, peer_of

log = logging.getLogger(__name__)

_THREADS = 4
HL7_TLS_FAILED = "hl7-tls-handshake-failed"  # rejections_total's reason


class OrderListener:
    """The MLLP server in its own thread and event loop."""

    def __init__(self, config: OrdersConfig, intake: OrderIntake) -> None:
        self.config = config
        self.intake = intake
        self._ssl = tls_context(config.tls)
        self._failures = HandshakeFailures("HL7", HL7_TLS_FAILED, intake.metrics)
        self._executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="hl7-orders")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hl7-orders")
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._reading: set[asyncio.Task] = set()  # waiting for a message: safe to cancel
        self.port = config.port
        self._closing = False

    @property
    def on_order(self) -> list[OrderCallback]:
        """Called with each order a committed message changed, after its ACK is sent."""
        return self.intake.on_order

    def start(self) -> OrderListener:
        self._thread.start()
        try:
            self._server = self._call(self._serve())
        except OSError as exc:
            self.stop()
            where = f"{self.config.bind}:{self.config.port}"
            raise OSError(f"orders: cannot listen on {where}: {exc.strerror or exc}") from None
        except BaseException:
            self.stop()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "HL7 order listener on %s:%d (MLLP%s, %s)",
            self.config.bind,
            self.port,
            " over TLS" if self._ssl else "",
            ", ".join(self.config.allowed_facilities) or "any sending facility",
        )
        return self

    async def _serve(self) -> asyncio.Server:
        return await start_hl7_server(
            self._connection,
            self.config.bind,
            self.config.port,
            limit=self.config.max_message_kb * 1024,
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop listening; a message being committed finishes and is acknowledged, then
        the connections close (within `grace_s`)."""
        if self._thread.is_alive():
            if self._server is not None:
                self._call(self._close(grace_s))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._executor.shutdown(wait=True)
        self._loop.close()

    async def _close(self, grace_s: float) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._reading):
            task.cancel()
        # A message in hand is committed and acknowledged, then its connection closes.
        self._closing = True
        if self._connections:
            await asyncio.wait(self._connections, timeout=grace_s)
        for task in list(self._connections):
            task.cancel()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # --- one connection ------------------------------------------------------------------

    async def _connection(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = peer_of(writer.transport)
        try:
            if self._ssl is not None and not await self._handshake(writer, peer, task):
                return
            while not self._closing and await self._one_message(reader, writer, peer, task):
                pass
        except (ConnectionError, OSError) as exc:
            log.info("HL7 connection from %s ended: %s", peer, type(exc).__name__)
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _handshake(self, writer: HL7StreamWriter, peer: str, task: asyncio.Task) -> bool:
        """TLS on the accepted connection, here rather than in the server: asyncio's own
        handshake drops a failure unlogged (gateway/tls_handshake.py). A failure is
        logged with the peer and the reason and counted; False then."""
        assert self._ssl is not None
        self._reading.add(task)  # nothing received yet: safe to cancel on stop
        try:
            await writer.start_tls(self._ssl, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
        except OSError as exc:  # ssl.SSLError, a reset, the handshake timing out
            self._failures.failed(peer, exc)
            return False
        finally:
            self._reading.discard(task)
        return True

    async def _one_message(
        self, reader: HL7StreamReader, writer: HL7StreamWriter, peer: str, task: asyncio.Task
    ) -> bool:
        """Read, handle and answer one message; False when the connection is done."""
        self._reading.add(task)
        try:
            async with asyncio.timeout(self.config.idle_timeout_s):
                block = await reader.readblock()
        except TimeoutError:
            log.info(
                "HL7 connection from %s idle for %gs: closed", peer, self.config.idle_timeout_s
            )
            return False
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                self.intake.metrics.reject("hl7-truncated")
                log.warning(
                    "HL7 from %s: connection closed within a message (%d bytes, no end"
                    " block): nothing stored, nothing acknowledged",
                    peer,
                    len(exc.partial),
                )
            return False
        except InvalidBlockError:
            await self._answer_unframed(writer, peer, "a frame without the MLLP start block")
            return True
        except ValueError:  # python-hl7: the limit reached before an end block
            await self._answer_unframed(
                writer, peer, f"a message over the limit of {self.config.max_message_kb} KB"
            )
            return False  # the rest of the oversized frame would follow as garbage
        finally:
            self._reading.discard(task)
        loop = asyncio.get_running_loop()
        handled = await loop.run_in_executor(self._executor, self.intake.handle, block, peer)
        try:
            writer.writeblock(handled.ack)
            await writer.drain()
        finally:  # committed: the callbacks hear of it even when the sender is gone
            if handled.notices:
                await loop.run_in_executor(self._executor, self.intake.notify, handled.notices)
        return True

    async def _answer_unframed(self, writer: HL7StreamWriter, peer: str, what: str) -> None:
        """AE for bytes that were not a usable MLLP frame (no message to name)."""
        self.intake.metrics.reject("hl7-unframed")
        log.warning("HL7 from %s: %s: answered AE", peer, what)
        problem = MessageProblem("AE", "MSH", SEGMENT_SEQUENCE_ERROR, f"{what} was received")
        application, facility = self.config.application, self.config.facility or ""
        writer.writeblock(ack(None, "AE", problem, application=application, facility=facility))
        await writer.drain()


def start_orders(config: OrdersConfig, intake: OrderIntake) -> OrderListener | None:
    """The listener when `orders.enabled`; ConfigError for unusable TLS files."""
    return OrderListener(config, intake).start() if config.enabled else None
