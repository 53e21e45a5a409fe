"""PLACEHOLDER: replaced by the renderer work."""
from model.ecg import Ecg


def render_png(ecg: Ecg, dpi: int = 200, header: bool = False) -> bytes:
    raise NotImplementedError


def render_pdf(ecg: Ecg, header: bool = True) -> bytes:
    raise NotImplementedError
