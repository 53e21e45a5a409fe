"""The one exception type for input the gateway cannot turn into an ECG."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn


class EcgDecodeError(Exception):
    """Raised for any input that cannot be decoded into an Ecg.

    The message always names the file and the reason, and never carries patient
    data, so it is safe to log and to return to a network peer.
    """

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Pickle with both arguments, so the error crosses process pools intact."""
        return (type(self), (self.source, self.reason))


def raise_field_error(format_name: str, source: str | Path, field: str, problem: str) -> NoReturn:
    """EcgDecodeError for one field of one format: 'Philips Sierra XML resolution: ...'.
    Decoders bind their format name once (functools.partial) and name field and problem."""
    raise EcgDecodeError(source, f"{format_name} {field}: {problem}")
