"""The measurement engine's site settings, parsed once with the gateway configuration.

Sites differ in where a sinus rate becomes bradycardia: 60/min by the AHA/ACCF/HRS
2009 recommendations (LUDB's and Georgia's cardiologists), 50/min by the 2018
ACC/AHA/HRS bradycardia guideline (PTB-XL's cardiologists). The default and the
evidence for it are in model/statements.py; a site sets its own in gateway.yaml.
"""

from __future__ import annotations

from pydantic import Field

from model.settings import StrictSettings


class StatementLimits(StrictSettings):
    """Rate limits of the sinus rhythm statements (beats per minute); their ranges keep
    bradycardia below tachycardia."""

    bradycardia_bpm: int = Field(
        50, ge=30, le=70, description="sinus bradycardia below this rate (2018: 50, 2009: 60)"
    )
    tachycardia_bpm: int = Field(100, ge=80, le=150, description="sinus tachycardia above this")


DEFAULT_LIMITS = StatementLimits()
