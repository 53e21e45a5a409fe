"""The report the VLM engine returns, assembled from the generated text and what was measured.

For a waveform, the measurement engine's measurements and null reasons fill the structured
fields whatever the text says; the text gives the impression and the statements, and
every disagreement with the measurements is a consistency warning. For a page (Secondary
Capture, PDF) nothing was measured: the report says so, and numbers in the text are
flagged as read off the image.

Text that names no ECG statement the parser knows (a model that wrote nonsense, or
stopped too early) never becomes the interpretation: a waveform gets the measurement
engine's statements and impression, a page no interpretation at all, each flagged
`engine-fallback` with a warning saying why. The engine holds such jobs instead where
the site chose `engine_unavailable: hold` (model/vlm/engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.measurement_engine import as_fallback
from model.report import MEASUREMENT_KEYS, EngineInfo, Evidence, Report, SourceInfo, Statement
from model.scp_statements import STATEMENTS
from model.vlm.findings import FoundStatement
from model.vlm.page_image import PageImage
from model.vlm.parse import (
    ParsedText,
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
    if not parsed.readable:
        notice = (
            f"{unreadable_reason(engine, generation)}; this report is from the measurement engine"
        )
        return as_fallback(
            measured.model_copy(update={"generated_text": generation.text}),
            [*generation_warnings(generation), notice],
        )
    rule_evidence = {s.code: s.evidence for s in measured.statements}
    warnings = generation_warnings(generation) + unread_warnings(parsed)
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
    if not parsed.readable:
        return unread_page_report(page, generation, engine)
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
        warnings=warnings + generation_warnings(generation) + unread_warnings(parsed),
        generated_text=generation.text,
    )


def unread_page_report(page: PageImage, generation: Generation, engine: EngineInfo) -> Report:
    """A page whose text could not be read: no interpretation, the image for a physician."""
    report = Report(
        null_reasons={key: NO_WAVEFORM for key in MEASUREMENT_KEYS},
        impression=(
            "No automated interpretation: the model's reading of this image could not be "
            "used. The attached image needs a physician's reading."
        ),
        engine=engine,
        source=SourceInfo(kind=page.kind, format=page.source_format),
        warnings=["no waveform: no measurements were available", *page.notes],
        generated_text=generation.text,
    )
    notice = f"{unreadable_reason(engine, generation)}; this report carries no interpretation"
    return as_fallback(report, [*generation_warnings(generation), notice])


def unreadable_reason(engine: EngineInfo, generation: Generation) -> str:
    """Why the text is not used (its words stay out: the report's generated_text has them)."""
    return (
        f"the {engine.name} engine's text ({engine.version}, {generation.new_tokens} tokens) "
        "names no recognised ECG statement and was not used"
    )


def unread_warnings(parsed: ParsedText) -> list[str]:
    if not parsed.unread_lines:
        return []
    return [
        (
            f"{len(parsed.unread_lines)} line(s) of the generated text name no recognised ECG "
            "statement and were left out of the impression"
        )
    ]


def generation_warnings(generation: Generation) -> list[str]:
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
