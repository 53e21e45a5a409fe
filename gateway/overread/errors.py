"""What the over-read service refuses, each with a message a physician can act on (the
web application shows it as it is: no patient data in it)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydicom.valuerep import PersonName


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
    it. Names the version now current, who made it and when; nothing was changed."""

    def __init__(self, job_id: int, version: int, by: str, by_name: str, at: float) -> None:
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        name = PersonName(by_name)
        who = " ".join(part for part in (name.given_name, name.family_name) if part)
        who = f"{who} ({by})" if who else by or "the gateway"
        super().__init__(
            f"report {job_id} was changed meanwhile: version {version} by {who} at {when};"
            f" open it again to see that version"
        )
        self.job_id, self.version, self.by, self.by_name, self.at = job_id, version, by, by_name, at


class Unavailable(OverreadError):
    """The report's files are gone (retention) or the new version cannot be routed."""
