"""Lead identity shared by every decoder and by the DICOM writer.

Sources name the same lead many ways ('i', 'Lead I (Einthoven)', SCPECG 5.6.3-9-1,
MDC 2:1); everything downstream wants one name per lead, in one order. (The limb leads that
carts often leave out are derived by model.ecg.derive_limb_leads.)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from model.ecg import STANDARD_LEADS

log = logging.getLogger(__name__)

# Leads beyond the standard twelve that CID 3001 codes; they follow the twelve in this order.
EXTRA_LEADS: tuple[str, ...] = (
    "V7",
    "V8",
    "V9",
    "V2R",
    "V3R",
    "V4R",
    "V5R",
    "V6R",
    "V7R",
    "V8R",
    "V9R",
    "X",
    "Y",
    "Z",
)


@dataclass(frozen=True)
class LeadCode:
    """One row of DICOM CID 3001 (ECG Leads): the SCPECG code and its MDC twin."""

    name: str
    scpecg: str
    mdc: str
    meaning: str


# DICOM PS3.16 CID 3001; the meanings are the SCPECG ones carts have written for years
# ('Lead I (Einthoven)'), which is what the writer emits.
LEAD_CODES: tuple[LeadCode, ...] = tuple(
    LeadCode(name, f"5.6.3-9-{number}", f"2:{number}", meaning)
    for name, number, meaning in (
        ("I", 1, "Lead I (Einthoven)"),
        ("II", 2, "Lead II"),
        ("III", 61, "Lead III"),
        ("aVR", 62, "Lead aVR"),
        ("aVL", 63, "Lead aVL"),
        ("aVF", 64, "Lead aVF"),
        ("V1", 3, "Lead V1"),
        ("V2", 4, "Lead V2"),
        ("V3", 5, "Lead V3"),
        ("V4", 6, "Lead V4"),
        ("V5", 7, "Lead V5"),
        ("V6", 8, "Lead V6"),
        ("V7", 9, "Lead V7"),
        ("V2R", 10, "Lead V2R"),
        ("V3R", 11, "Lead V3R"),
        ("V4R", 12, "Lead V4R"),
        ("V5R", 13, "Lead V5R"),
        ("V6R", 14, "Lead V6R"),
        ("V7R", 15, "Lead V7R"),
        ("X", 16, "Lead X"),
        ("Y", 17, "Lead Y"),
        ("Z", 18, "Lead Z"),
        ("V8", 66, "Lead V8"),
        ("V9", 67, "Lead V9"),
        ("V8R", 68, "Lead V8R"),
        ("V9R", 69, "Lead V9R"),
    )
)
CODE_BY_NAME: dict[str, LeadCode] = {code.name: code for code in LEAD_CODES}
_MDC_PARTITION_2 = 2 << 16  # MDC context-free codes: partition 2 (SCADA) << 16 | term code


def _names_by_code() -> dict[tuple[str, str], str]:
    """(scheme, code) -> lead, for SCPECG codes and MDC as '2:1' and as context-free 131329."""
    names = {}
    for code in LEAD_CODES:
        term = int(code.mdc.split(":")[1])
        names[("SCPECG", code.scpecg)] = code.name
        names[("MDC", code.mdc)] = code.name
        names[("MDC", str(_MDC_PARTITION_2 + term))] = code.name
    return names


_NAME_BY_CODE = _names_by_code()

# Spellings seen in WFDB headers, vendor XML and DICOM code meanings, keyed in a
# folded form (lower case, no spaces, no 'lead' prefix). Frank leads appear as vx/vy/vz.
_ALIASES: dict[str, str] = {name.lower(): name for name in STANDARD_LEADS + EXTRA_LEADS}
_ALIASES.update({"vx": "X", "vy": "Y", "vz": "Z"})


def _fold(text: str) -> str:
    text = re.sub(r"\(.*?\)", "", text)  # 'Lead I (Einthoven)'
    text = text.split(",")[0]  # 'aVR, augmented voltage, right'
    text = re.sub(r"[\s_]+", "", text.strip().lower())
    return text.removeprefix("mdcecg").removeprefix("lead")  # also 'MDC_ECG_LEAD_AVR'


def lead_from_text(text: str | None) -> str | None:
    """The standard name for a free-text lead label, or None if it names no known lead."""
    if not text:
        return None
    return _ALIASES.get(_fold(text))


def lead_from_code(designator: str | None, value: str | None) -> str | None:
    """The standard name for a coded lead (SCPECG or MDC, CID 3001), or None.

    MDC leads come as 'partition:code' (2:1), context-free numbers (131329) or
    reference IDs (MDC_ECG_LEAD_I); the last are names, so they go by their text."""
    if not designator or not value:
        return None
    scheme, code = designator.strip().upper(), value.strip()
    if scheme == "MDC" and code.upper().startswith("MDC_ECG_LEAD_"):
        return lead_from_text(code)
    return _NAME_BY_CODE.get((scheme, code))


def standard_order(names: list[str] | tuple[str, ...]) -> list[str]:
    """The twelve in STANDARD_LEADS order, then coded extras, then anything else as found."""
    rank = {name: i for i, name in enumerate(STANDARD_LEADS + EXTRA_LEADS)}
    known = sorted((n for n in names if n in rank), key=rank.__getitem__)
    return known + [n for n in names if n not in rank]


def stack_leads(leads: dict[str, np.ndarray]) -> tuple[tuple[str, ...], np.ndarray]:
    """Lead names in standard order and the (leads x samples) float32 matrix to match."""
    names = standard_order(list(leads))
    return tuple(names), np.stack([np.asarray(leads[n], dtype=np.float32) for n in names])


def add_channel(leads: dict[str, np.ndarray], name: str, samples: np.ndarray) -> None:
    """Keep the first channel of a given lead; a repeat (e.g. a second lead II strip) is
    logged rather than silently overwriting the first."""
    if name in leads:
        log.info("lead %s appears more than once; keeping the first channel", name)
        return
    leads[name] = samples
