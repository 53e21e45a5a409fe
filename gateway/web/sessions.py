"""Server-side sessions: a random ID in an HttpOnly, SameSite=Strict cookie (Secure under
TLS), the user and the CSRF token kept here, in memory.

Server-side rather than a signed cookie so that logging out or expiring really ends the
session (a signed cookie stays valid until its timestamp runs out, wherever it was
copied), and no signing key has to be kept. A restart signs everyone out, which for a
worklist is a small price. A session is also made before login, to carry the login
form's CSRF token.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.web.auth import User

COOKIE = "ecg_session"
_PRE_LOGIN_S = 15 * 60.0  # a login form may stay open this long
_MAX_SESSIONS = 10_000  # anonymous sessions beyond this push the oldest out


@dataclass
class Session:
    session_id: str
    csrf_token: str
    expires: float
    user: User | None = None
    flash: list[str] = field(default_factory=list)


class Sessions:
    """Sessions by ID; each use pushes its end `idle_s` further (an idle timeout)."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, user: User | None = None) -> Session:
        """A new session (a new ID and CSRF token: login never keeps the old ID)."""
        lifetime = self.idle_s if user is not None else _PRE_LOGIN_S
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), self._clock() + lifetime, user
        )
        with self._lock:
            self._sweep()
            self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this ID, its end pushed back; None if unknown or expired."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expires <= now:
                del self._sessions[session_id]
                return None
            if session.user is not None:
                session.expires = now + self.idle_s
            return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _sweep(self) -> None:
        now = self._clock()
        expired = [key for key, session in self._sessions.items() if session.expires <= now]
        for key in expired:
            del self._sessions[key]
        while len(self._sessions) >= _MAX_SESSIONS:
            anonymous = next((k for k, s in self._sessions.items() if s.user is None), None)
            del self._sessions[anonymous or next(iter(self._sessions))]
