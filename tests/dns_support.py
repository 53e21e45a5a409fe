"""A DNS server that does not answer, for one process: socket.getaddrinfo replaced by
one that, for names under `.slow-dns.test`, waits (as a resolver waiting on a silent
server does) and then answers as the real call does for 127.0.0.1: same signature, same
result; and socket.gethostbyaddr (getfqdn's reverse lookup) waiting the same way for
those names and for this host's own name. Every other name is looked up for real. The `slow_dns` fixture (conftest.py)
puts it in place for a test."""

from __future__ import annotations

import socket
import threading
import time

_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyaddr = socket.gethostbyaddr


class SlowDns:
    """socket.getaddrinfo answering names under `.slow-dns.test` after `delay_s` (or when
    released), as 127.0.0.1; every other name as the real one does."""

    def __init__(self) -> None:
        self.delay_s = 60.0
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.waiting: list[threading.Thread] = []  # threads in a lookup now

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode("ascii") if isinstance(host, bytes) else host  # anyio's, IDNA
        if name is None or not name.endswith(".slow-dns.test"):
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        self._wait_silently()
        return _real_getaddrinfo("127.0.0.1", port, family, type, proto, flags)

    def gethostbyaddr(self, host):
        """socket.gethostbyaddr (what socket.getfqdn calls): for this host's own name and
        names under `.slow-dns.test`, the same wait, then the real answer."""
        if host not in (socket.gethostname(), "") and not str(host).endswith(".slow-dns.test"):
            return _real_gethostbyaddr(host)
        self._wait_silently()
        return _real_gethostbyaddr("127.0.0.1")

    def _wait_silently(self) -> None:
        """As a DNS server that does not answer, until released or delay_s has passed."""
        with self.lock:
            self.waiting.append(threading.current_thread())
        try:
            self.released.wait(self.delay_s)
        finally:
            with self.lock:
                self.waiting.remove(threading.current_thread())

    def answer(self, from_now_after_s: float = 60.0) -> None:
        """The lookups waiting now are answered; later ones after `from_now_after_s`."""
        released = self.released
        self.released, self.delay_s = threading.Event(), from_now_after_s
        released.set()
        deadline = time.monotonic() + 10
        while self.waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # and their threads have handed their answer on
