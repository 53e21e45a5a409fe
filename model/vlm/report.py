"""The report the VLM engine returns, assembled from the generated text and what was measured.

For a waveform, the measurement engine's measurements and null reasons fill the structured
fields whatever the text says; the text gives the impression and the statements, and
every disagreement with the measurements is a consistency warning. For a page (Secondary
Capture, PDF) nothing was measured: the report says so, and numbers in the text are
flagged as read off the image.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.report import MEASUREMENT_KEYS, EngineInfo, Evidence, Report, SourceInfo, Statement
from model.scp_statements import STATEMENTS
from model.vlm.page_image import PageImage
from model.vlm.parse import (
    FoundStatement,
    omitted_rule_warnings,
    parse_generated_text,
    statement_warnings,
    value_warnings,
)

NO_WAVEFORM = "no waveform: the received object is an image"
STATED_BY_MODEL = "stated in the generated text"


@dataclass(frozen=True)
class Generation:
    """One generated answer and how it ended."""

    text: str
    new_tokens: int
    finished: bool  # the model ended its turn; False: cut by max_new_tokens or the timeout
    timed_out: bool = False
    batch_seconds: float = 0.0  # wall time of the whole batch it was generated in
    prompt_tokens: int = 0  # including the image tokens


def waveform_report(
    measured: Report, generation: Generation, engine: EngineInfo, hybrid: bool
) -> Report:
    """Measured values from `measured` (the measurement engine's report), words from the model.

    In hybrid mode the model was given the rule statements, so leaving one out is
    flagged too; in vlm mode it never saw them.
    """
    parsed = parse_generated_text(generation.text)
    rule_evidence = {s.code: s.evidence for s in measured.statements}
    warnings = generation_warnings(generation, bool(parsed.statements))
    warnings += value_warnings(parsed.values, measured.measurements, measured.null_reasons)
    warnings += statement_warnings(parsed.statements, measured.measurements)
    if hybrid:
        warnings += omitted_rule_warnings(parsed.statements, measured.statements)
    return Report(
        measurements=measured.measurements,
        null_reasons=measured.null_reasons,
        statements=[_statement(f, rule_evidence.get(f.code)) for f in parsed.statements],
        impression=parsed.impression,
        engine=engine,
        source=measured.source,
        warnings=measured.warnings + warnings,
        generated_text=generation.text,
    )


def page_report(page: PageImage, generation: Generation, engine: EngineInfo) -> Report:
    parsed = parse_generated_text(generation.text)
    warnings = ["no waveform: no measurements were available; the model read the image"]
    warnings += page.notes
    if parsed.values:
        stated = "; ".join(v.phrase for v in parsed.values)
        warnings.append(f"numbers in the text were read from the image, not measured: {stated}")
    return Report(
        null_reasons={key: NO_WAVEFORM for key in MEASUREMENT_KEYS},
        statements=[_statement(f, None) for f in parsed.statements],
        impression=parsed.impression,
        engine=engine,
        source=SourceInfo(kind=page.kind, format=page.source_format),
        warnings=warnings + generation_warnings(generation, bool(parsed.statements)),
        generated_text=generation.text,
    )


def generation_warnings(generation: Generation, has_statements: bool) -> list[str]:
    warnings = []
    if generation.timed_out:
        warnings.append(
            f"generation stopped at the time limit after {generation.batch_seconds:.1f}"
            " s; the text may be incomplete"
        )
    elif not generation.finished:
        warnings.append(
            f"generation stopped at the limit of {generation.new_tokens} new tokens; "
            "the text may be incomplete"
        )
    if not has_statements:
        warnings.append("the generated text names no recognised ECG statement")
    return warnings


def _statement(found: FoundStatement, rule_evidence: Evidence | None) -> Statement:
    """The model's statement; the measurement engine's evidence where it found the same."""
    evidence = rule_evidence or Evidence(criterion=STATED_BY_MODEL, values={"phrase": found.phrase})
    return Statement(
        code=found.code,
        text=found.statement_text(),
        snomed=STATEMENTS[found.code].snomed,
        evidence=evidence,
    )
