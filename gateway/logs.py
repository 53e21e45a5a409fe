"""The log's format: text lines for a terminal, or one JSON object a line (gateway.yaml
`log_format: json`) for a log shipper, through python-json-logger. Either way the log
holds UIDs, hashes and states, never patient data (that is the audit trail's, PS3.15)."""

from __future__ import annotations

import logging
import ssl
import traceback
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "{asctime}{levelname}{name}{threadName}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "threadName": "thread"},
        )
    return logging.Formatter(TEXT_FORMAT)


def use_log_format(log_format: str) -> None:
    """Give every handler of the root logger this format (at start and on SIGHUP)."""
    formatter = formatter_for(log_format)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def failure_reason(exc: BaseException) -> str:
    """An exception as a peer, a probe or a log may be told it: its type and, for an OS
    or TLS error, the reason ("No such file or directory", OpenSSL's CERTIFICATE_VERIFY_
    FAILED); never its message, which may name a path, a database or quote a value."""
    why = exc.reason if isinstance(exc, ssl.SSLError) else None
    why = why or (exc.strerror if isinstance(exc, OSError) else None)
    return f"{type(exc).__name__} ({why})" if why else type(exc).__name__


def fault(exc: BaseException, stack: bool = False) -> str:
    """How a log line, a job's error or an alert names an unexpected exception: its
    failure_reason and the line that raised it (with `stack`, every frame on lines
    of their own); never its message, which may quote a value (pydantic's quote the
    input: a patient's name or birth date)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    named = f"{failure_reason(exc)}{where}"
    if not stack or not frames:
        return named
    return named + "\n" + "".join(traceback.format_list(frames)).rstrip()
