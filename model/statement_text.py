"""One coded statement with its evidence: the form every rule of model.statements and
model.rhythm_statements returns."""

from __future__ import annotations

from model.report import Evidence, Statement
from model.scp_statements import STATEMENTS

# PTB-XL's PACE reads "normal functioning artificial pacemaker"; stimuli before the
# QRS complexes show that a pacemaker drives the heart, not that it works properly.
TEXT_OVERRIDES = {"PACE": "Artificial pacemaker rhythm"}


def make_statement(
    code: str,
    criterion: str,
    text: str | None = None,
    snomed: str | None = None,
    **values: float | str | None,
) -> Statement:
    """The statement for `code`, its text and SNOMED concept from the SCP table unless
    given (a bigeminy of known origin is more than SCP's 'unknown origin')."""
    scp = STATEMENTS[code]
    default_text = TEXT_OVERRIDES.get(code, scp.description[0].upper() + scp.description[1:])
    return Statement(
        code=code,
        text=text or default_text,
        snomed=snomed or scp.snomed,
        evidence=Evidence(criterion=criterion, values=_rounded(values)),
    )


def _rounded(values: dict[str, float | int | str | None]) -> dict[str, float | int | str | None]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()}
