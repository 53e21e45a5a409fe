"""PLACEHOLDER: replaced by the decoder work."""
from pathlib import Path
from model.ecg import Ecg


def load(path: str | Path) -> Ecg:
    raise NotImplementedError
