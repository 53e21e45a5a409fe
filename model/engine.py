"""The engines that turn ECGs into reports, behind one protocol, and the choice of one.

`Engine` is everything the gateway's workers call. Its implementations: the
measurement engine and its stand-in for a VLM that could not be loaded
(model/measurement_engine.py), and the VLM engine (model/vlm/engine.py: vlm and
hybrid). `engine_for(choice)` gives a
process its engine, loaded once; torch and transformers are imported only where a VLM
is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from model.ecg import Ecg
from model.measurement_engine import FallbackEngine, MeasurementEngine
from model.report import Report
from model.statement_limits import DEFAULT_LIMITS, StatementLimits
from model.vlm.page_image import PageImage
from model.vlm.settings import VlmSettings, VlmUnavailable

__all__ = [
    "Engine",
    "EngineChoice",
    "Held",
    "engine_for",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """In place of a report: this item's answer was not usable and the site holds such
    jobs (engine_unavailable: hold) instead of sending the measurement engine's report."""

    reason: str


@runtime_checkable
class Engine(Protocol):
    """What turns an ECG into a report: the measurement engine or a VLM engine."""

    name: str
    reads_pages: bool  # received pictures (Secondary Capture, PDF) are worth decoding for it

    def interpret(self, ecg: Ecg) -> Report:
        """The report of one waveform."""
        ...

    def interpret_batch(self, inputs: Sequence[Ecg | PageImage]) -> Sequence[Report | Held | None]:
        """One item per input, in input order: its report, or None for a received page
        (PageImage) that this engine cannot read (the caller keeps what it already has
        for that page), or Held where its job is to wait. A VLM reads waveforms and pages
        in one generation batch."""
        ...


@dataclass(frozen=True)
class EngineChoice:
    """The engine the workers run, and what they do when its model cannot be loaded."""

    name: str = "measure"
    vlm: VlmSettings | None = None  # the vlm and hybrid engines' settings
    # "fallback" | "hold": when the model cannot be loaded, and when its text is unreadable
    on_unavailable: str = "fallback"
    limits: StatementLimits = DEFAULT_LIMITS


_engines: dict[EngineChoice, Engine] = {}  # one per process: a VLM is loaded once


def engine_for(choice: EngineChoice) -> Engine:
    """This process's engine for `choice`, loaded on first use and kept.

    A VLM that cannot be loaded is tried again on the next call (it may have been
    provided since); meanwhile the measurement engine stands in (FallbackEngine), or,
    where choice.on_unavailable is "hold", VlmUnavailable is raised and jobs are held."""
    if choice not in _engines:
        if choice.vlm is None:
            return _engines.setdefault(choice, MeasurementEngine(choice.limits))
        from model.vlm.engine import VlmEngine  # torch and transformers: only where a VLM runs

        try:
            _engines[choice] = VlmEngine(choice.vlm, choice.limits, choice.on_unavailable)
        except VlmUnavailable as exc:
            if choice.on_unavailable == "hold":
                log.error("%s engine unavailable, job held: %s", choice.name, exc)
                raise
            log.error("%s engine unavailable, measuring instead: %s", choice.name, exc)
            return FallbackEngine(choice.name, choice.limits)
    return _engines[choice]
