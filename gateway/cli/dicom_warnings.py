"""pydicom's warnings, told without the values they quote.

pydicom checks a value as it reads or writes it and warns quoting a bad one ("Invalid
value for VR AS: '47yr'": a patient's age, sex or name) to stderr and to its logger. The
gateway reads with the checks off (gateway/server.py); the operator commands that read
or write an ECG file (analyze, render, convert, routes test) keep them, since a bad value is worth
knowing before a cart sends it, but tell each by the element's tag (known where pydicom
converts a read value: its `raw_element_value` hook) and the kind of problem, cut before
the first quote or colon, so no value is ever printed.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.hooks import hooks

# The kind of problem: the message up to its first quote or colon (where a value starts).
_KIND = re.compile(r"""^[^'":]*""")
_LOGGER = "pydicom"


def values_unquoted(command: Callable[..., int]) -> Callable[..., int]:
    """`command` run with pydicom's warnings told by tag and kind, never by value."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> int:
        with _told_without_values():
            return command(*args, **kwargs)

    return run


@contextmanager
def _told_without_values() -> Iterator[None]:
    default = hooks.raw_element_value
    logger = logging.getLogger(_LOGGER)
    level = logger.level
    hooks.register_callback("raw_element_value", functools.partial(_converted, default))
    logger.setLevel(logging.ERROR)  # warn_and_log logs what it warns: told once, below
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("always", module=_LOGGER)
            warnings.showwarning = functools.partial(_shown, warnings.showwarning)
            yield
    finally:
        logger.setLevel(level)
        hooks.register_callback("raw_element_value", default)


def _converted(default: Callable[..., None], raw: RawDataElement, data: dict, **kw: Any) -> None:
    """pydicom's conversion of one element read, its warnings told with the element's tag."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", module=_LOGGER)
        default(raw, data, **kw)
    element = f"{raw.tag} {keyword_for_tag(raw.tag) or 'private'} ({data.get('VR', '?')})"
    for warning in caught:
        _tell(element, warning.message, warning.category)


def _shown(
    shown: Callable[..., None],
    message: Warning | str,
    category: type[Warning],
    filename: str,
    *args: Any,
    **kwargs: Any,
) -> None:
    """A warning outside a read element's conversion: pydicom's (a value set when writing
    DICOM) told by kind; any other library's as Python shows it."""
    if f"{_LOGGER}{os.sep}" in filename:
        _tell("pydicom", message, category)
    else:
        shown(message, category, filename, *args, **kwargs)


def _tell(element: str, message: Warning | str, category: type[Warning]) -> None:
    if not issubclass(category, UserWarning):  # not a value check: a deprecation
        print(f"warning: {category.__name__}: {message}", file=sys.stderr)
        return
    kind = _KIND.match(str(message)).group(0).strip().rstrip(".")
    print(f"warning: {element}: {kind}", file=sys.stderr)
