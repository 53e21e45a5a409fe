"""The building blocks of routes.yaml that its sections share: durations as admins
write them, a retry policy, where a secret lives, and TLS options."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from model.settings import StrictSettings

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # destinations, rules, targets
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_duration(value: Any) -> Any:
    """Admins write `30s`, `15m`, `2h`, `7d` or plain seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 30s, 15m, 2h or 7d")
        number, unit = match.groups()
        return timedelta(seconds=float(number) * _UNIT_SECONDS[unit or "s"])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class RetryPolicy(StrictSettings):
    max_attempts: int = Field(20, ge=1)
    max_age: Duration = timedelta(days=3)
    backoff_base: Duration = timedelta(seconds=30)
    backoff_cap: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must not be smaller than backoff_base")
        return self


class SecretRef(StrictSettings):
    """Where a secret lives; the secret itself never appears in routes.yaml."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env: (variable name) or file: (path)")
        return self

    def read(self) -> str:
        """Read at send time so a rotated secret takes effect without a reload."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise LookupError(f"environment variable {self.env} is not set")
            return value.strip()
        assert self.file is not None
        try:
            return self.file.read_text().strip()
        except OSError as exc:
            raise LookupError(f"cannot read secret file {self.file}: {exc.strerror}") from None


class TlsOptions(StrictSettings):
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @model_validator(mode="after")
    def _cert_with_key(self) -> TlsOptions:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self
