"""Host name lookups within a send's deadline, for every network sender (deliveries
and critical-notice targets).

getaddrinfo cannot be interrupted: a DNS server that does not answer holds the calling
thread until the resolver itself gives up (resolv.conf's timeout × attempts × servers).
So each lookup runs in a thread of its own and the sender waits for it only as long as
its deadline allows. What keeps those threads from piling up while DNS hangs: one lookup
in flight per (host, port), shared by every sender waiting on it, and at most
`MAX_PENDING` in flight at all. They are daemon threads, so one still waiting on DNS
does not hold the gateway's exit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

AddrInfo = tuple[Any, ...]  # what socket.getaddrinfo gives per address
MAX_PENDING = 8

_lock = threading.Lock()
_pending: dict[tuple[Any, ...], Future] = {}


class LookupTimeout(TimeoutError):
    """The lookup did not answer within the time the send had left."""


class LookupCancelled(OSError):
    """The send gave the wait up before DNS answered: its sender was closed."""


def first_ipv4(addresses: list[AddrInfo]) -> str:
    """The address to dial where only one is tried: the first IPv4 one, as pynetdicom
    itself chose, else the first (a dual-stack peer is often firewalled on IPv6)."""
    chosen = next((a for a in addresses if a[0] == socket.AF_INET), addresses[0])
    return chosen[4][0]


def lookup(host: str, port: int, timeout: float, cancel: Future | None = None) -> list[AddrInfo]:
    """socket.getaddrinfo(host, port) for a TCP connection, within `timeout` seconds:
    LookupTimeout past it, the resolver's own OSError when it fails in time.
    `cancel`: a Future that another thread completes (a sender's close) to end the wait
    at once, with LookupCancelled; the lookup itself goes on for its other waiters."""
    if _is_address(host):  # no DNS involved: never held up by other hosts' lookups
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    started = _shared((host, port, 0, socket.SOCK_STREAM))
    waited = [started] if cancel is None else [started, cancel]
    wait(waited, timeout=max(timeout, 0.0), return_when=FIRST_COMPLETED)
    if started.done():
        return started.result()
    if cancel is not None and cancel.done():
        raise LookupCancelled(f"the wait for DNS for {host} was given up: the sender was closed")
    raise LookupTimeout(f"no answer from DNS for {host} within the time left")


class LookupLoop(asyncio.SelectorEventLoop):
    """An event loop whose getaddrinfo (what asyncio and httpx's anyio connect with) goes
    through the same shared, bounded lookups rather than the loop's own thread pool,
    which would add a thread per send while DNS hangs. `unanswered` says whether one of
    its lookups is still waiting, so a deadline can be put down to DNS."""

    def __init__(self) -> None:
        super().__init__()
        self._lookups: list[Future] = []

    async def getaddrinfo(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        if _is_address(host):
            return socket.getaddrinfo(host, port, family, type, proto, flags)
        started = _shared((host, port, family, type, proto, flags))
        self._lookups = [f for f in self._lookups if not f.done()] + [started]
        return await asyncio.wrap_future(started, loop=self)

    def unanswered(self) -> bool:
        return any(not f.done() for f in self._lookups)


def _is_address(host: Any) -> bool:
    """A numeric IPv4 or IPv6 address (str or bytes, as anyio passes it), which
    getaddrinfo answers at once without asking DNS."""
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0)
    except ValueError:
        return False
    return True


def _shared(key: tuple[Any, ...]) -> Future:
    """The lookup in flight for the same call, or a new one in a daemon thread; a failed
    Future when `MAX_PENDING` are in flight already (DNS is not answering at all) or no
    thread can be started. `key` is getaddrinfo's arguments."""
    with _lock:
        running = _pending.get(key)
        if running is not None:
            return running
        started: Future = Future()
        if len(_pending) >= MAX_PENDING:
            started.set_exception(
                OSError(f"{len(_pending)} host name lookups are still unanswered")
            )
            return started
        started.set_running_or_notify_cancel()  # a waiter giving up cannot cancel it
        _pending[key] = started
    try:
        threading.Thread(target=_run, args=(key, started), name="dns-lookup", daemon=True).start()
    except RuntimeError as exc:  # "can't start new thread": the host is not left blocked
        with _lock:
            del _pending[key]
        started.set_exception(OSError(f"no thread for the host name lookup: {exc}"))
    return started


def _run(key: tuple[Any, ...], started: Future) -> None:
    """Whatever the lookup raises (gaierror, a name IDNA cannot encode, a bug) goes to
    its waiters, as a thread pool would hand it over: none is left to run out of time."""
    try:
        result = socket.getaddrinfo(*key)
    except Exception as exc:  # noqa: BLE001 - handed to the waiters, not swallowed
        started.set_exception(exc)
        return
    finally:
        with _lock:  # a later send looks the host up afresh: DNS answers are not kept
            del _pending[key]
    started.set_result(result)
