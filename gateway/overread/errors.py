"""What the over-read service refuses, each with a message a physician can act on (the
web application shows it as it is: no patient data in it)."""

from __future__ import annotations

from datetime import UTC, datetime


class OverreadError(Exception):
    """A request the over-read service cannot carry out."""


class NotFound(OverreadError):
    """No such report (or not finished yet)."""


class PermissionDenied(OverreadError):
    """The user's role does not allow it (a reader confirming)."""


class InvalidEdit(OverreadError):
    """An edit that cannot be sent: names the field (`field`) and what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Conflict(OverreadError):
    """The report changed since the user opened it: someone else confirmed or corrected
    it. Names the version now current, who made it (`by`: user id; `by_display`: as
    people write the name) and when; nothing was changed."""

    def __init__(self, job_id: int, version: int, by: str, by_display: str, at: float) -> None:
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(
            f"report {job_id} was changed meanwhile: version {version} by {by_display} at"
            f" {when}; open it again to see that version"
        )
        self.job_id = job_id
        self.version = version
        self.by = by
        self.by_display = by_display
        self.at = at


class Unavailable(OverreadError):
    """The report's files are gone (retention) or the new version cannot be routed."""
