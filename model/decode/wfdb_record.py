"""WFDB records (PhysioNet: PTB-XL, LUDB, CinC .mat, MIT-BIH...) -> Ecg, via the wfdb package."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import wfdb

from model.decode.acquisition import checked_sampling_rate
from model.decode.demographics import age_string, sex_code
from model.decode.leads import add_channel, lead_from_text, stack_leads
from model.decode.units import millivolts_per_unit
from model.ecg import Ecg, EcgMetadata, derive_limb_leads
from model.errors import EcgDecodeError

log = logging.getLogger(__name__)

# Header comments are free text; these are the key spellings PhysioNet databases use:
# 'age: 81' (PTB), '<age>: 51' (LUDB), 'Age: 78' (CinC), 'age 71' (MUSE exports).
_AGE = re.compile(r"(?:^|<)\s*age\s*>?\s*:?\s*(\d{1,3})\b", re.IGNORECASE)
_SEX = re.compile(r"(?:^|<)\s*(?:sex|gender)\s*>?\s*:?\s*([a-z]+)", re.IGNORECASE)
_PATIENT_ID = re.compile(r"(?:^|<)\s*(?:mrn|patient[ _]?id)\s*>?\s*:?\s*(\S+)", re.IGNORECASE)


def header_path(path: Path) -> Path | None:
    """The .hea file of the record `path` names (the header, a signal file, or the bare
    record name), or None when there is no such header."""
    candidates = [path.parent / f"{path.name}.hea"]
    if path.suffix:
        candidates.insert(0, path.with_suffix(".hea"))
    return next((c for c in candidates if c.is_file()), None)


def decode_wfdb(path: Path, header: Path) -> Ecg:
    """Physical-unit signals of every voltage channel; pressure and other channels are
    logged and left out, since an Ecg holds electrical leads only."""
    record = _read_record(path, header)
    signal = record.p_signal
    if signal is None or signal.ndim != 2 or signal.shape[0] == 0:
        raise EcgDecodeError(path, "WFDB record has no samples")
    rate = checked_sampling_rate(path, float(record.fs))
    leads: dict[str, np.ndarray] = {}
    for index, (name, unit) in enumerate(zip(record.sig_name, record.units, strict=True)):
        per_unit = millivolts_per_unit(unit)
        if per_unit is None:
            log.info("WFDB signal %s has units %r, not a voltage; skipped", name, unit)
            continue
        add_channel(leads, lead_from_text(name) or name.strip(), signal[:, index] * per_unit)
    if not leads:
        raise EcgDecodeError(path, "no ECG leads: no WFDB signal is in a voltage unit")
    names, samples = stack_leads(derive_limb_leads(leads))
    return Ecg(samples, rate, names, metadata=_metadata(record))


def _read_record(path: Path, header: Path) -> wfdb.Record:
    record_name = header.parent / header.name[: -len(".hea")]
    try:
        return wfdb.rdrecord(str(record_name))
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types for bad headers/data
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise EcgDecodeError(
            path, f"cannot read WFDB record: {type(exc).__name__} {detail}".rstrip()
        ) from None


def _metadata(record: wfdb.Record) -> EcgMetadata:
    comments = [str(c) for c in record.comments or []]
    return EcgMetadata(
        patient_id=_first_match(_PATIENT_ID, comments),
        patient_sex=sex_code(_first_match(_SEX, comments)),
        patient_age=age_string(_first_match(_AGE, comments)),
        acquisition_time=_start_time(record),
        source_format="wfdb",
    )


def _first_match(pattern: re.Pattern[str], comments: list[str]) -> str | None:
    for comment in comments:
        match = pattern.search(comment)
        if match:
            return match.group(1)
    return None


def _start_time(record: wfdb.Record) -> datetime | None:
    if record.base_date is None or record.base_time is None:
        return None
    return datetime.combine(record.base_date, record.base_time)
