"""CSRF: every POST carries its session's token in a hidden form field `csrf_token`.

The synchroniser-token pattern (OWASP): the token lives server-side with the session, the
form repeats it, and a request whose field is missing or differs is refused with 403
before anything else happens. SameSite=Strict cookies are a second line, not the only one.
"""

from __future__ import annotations

import hmac

from gateway.web.sessions import Session

FIELD = "csrf_token"


def csrf_problem(session: Session | None, presented: str | None) -> str | None:
    """Why this POST is refused, or None when its token matches its session's."""
    if session is None:
        return "your session has ended (or cookies are off): reload the page and try again"
    if not presented:
        return "the form carried no CSRF token: reload the page and submit it again"
    if not hmac.compare_digest(presented.encode(), session.csrf_token.encode()):
        return "the form's CSRF token does not match your session: reload the page"
    return None
