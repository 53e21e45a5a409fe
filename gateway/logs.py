"""The log's format: text lines for a terminal, or one JSON object a line (gateway.yaml
`log_format: json`) for a log shipper, through python-json-logger. Either way the log
holds UIDs, hashes and states, never patient data (that is the audit trail's, PS3.15)."""

from __future__ import annotations

import logging

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
