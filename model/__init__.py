"""ECG interpretation: the ECG type, decoders, rendering, measurement, engines.

Public API (other parts and outside checks call these; keep the names):
    load(path) -> Ecg
    render_png(ecg, dpi=200, header=False) -> bytes
    render_pdf(ecg, header=True, report=None) -> bytes
    analyze(ecg, limits=DEFAULT_LIMITS) -> Report
"""

from model.decode import load
from model.ecg import STANDARD_LEADS, Ecg, EcgMetadata
from model.errors import EcgDecodeError
from model.measurement_engine import analyze
from model.render import render_pdf, render_png
from model.report import Report
from model.statement_limits import DEFAULT_LIMITS, StatementLimits

__all__ = [
    "DEFAULT_LIMITS",
    "STANDARD_LEADS",
    "Ecg",
    "EcgDecodeError",
    "EcgMetadata",
    "Report",
    "StatementLimits",
    "analyze",
    "load",
    "render_pdf",
    "render_png",
]
