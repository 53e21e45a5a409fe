"""Does the model read the page? Scores on PTB-XL's held-out fold, beside three baselines.

Every system gets the clean page the gateway serves (VlmEngine renders the record, `vlm`
mode: image and instruction only, so every word of the answer is the model's own) and
every row is written in one format, stage 0's reading (training/stage0_pages.py:
rhythm, rate and intervals, axis, conduction), so no row wins on formatting:

- measurement engine: its own reading of the signal, in that format. It defines the
  rate reference, so its rate error is 0 by construction; its rhythm and conduction F1
  against the cardiologists' codes are real.
- copy the prompt (floor): the instruction the model is given, as its answer.
- constant: the most common reading of the training pages (median values, the most
  common rhythm and conduction), the same for every page.
- each model: what it generated.

Figures: heart rate MAE against the measurement engine's rate on the signal (an answer
that states no rate is scored as the constant's rate, and the rate column says how many
stated one); macro F1 over PTB-XL's rhythm codes and over its conduction codes present
in the fold (codes read back from the text by model/vlm/parse.py, negations respected);
BLEU, ROUGE-L and BERTScore against the reference reading (PTB-XL's rhythm and
conduction statements, the measured rate, intervals and axis).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

import model
from model.report import Measurements, Report
from model.vlm.parse import parse_generated_text
from model.vlm.prompt import report_prompt
from model.vlm.settings import TILE_PX, VlmSettings
from training.dataset import STATEMENTS_CSV, DatasetConfig, read_ptbxl_index
from training.evaluate import BertScoreConfig, bertscore_f1, bleu, rouge_l
from training.stage0_pages import read_pages, reading_target, reading_text
from training.targets import ScpStatement, load_scp_statements, statement_phrase

ENGINE, COPY, CONSTANT = "measurement engine", "copy the prompt (floor)", "constant"


class ModelRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    model: str
    adapter: str | None = None


class ReadingEvalConfig(BaseModel):
    """config/training/evaluate_reading.yaml."""

    model_config = ConfigDict(extra="forbid")

    ptbxl_dir: Path = Path("../shared/data/ptbxl")
    test_folds: list[int] = Field(default_factory=lambda: [10])
    limit: int | None = Field(None, ge=1, description="only the first N PTB-XL records")
    pages_dir: Path = Field(Path("out/training/stage0-pages"), description="constant's source")
    longest_edge: int = Field(512, ge=TILE_PX)
    max_new_tokens: int = Field(72, ge=1)
    batch_size: int = Field(4, ge=1)
    device: str = "cpu"
    models: list[ModelRow] = Field(default_factory=list)
    bertscore: BertScoreConfig = Field(default_factory=BertScoreConfig)


@dataclass(frozen=True)
class Case:
    ecg_id: int
    ecg: model.Ecg
    measured: Report
    reference_text: str
    rhythm: list[str]
    conduction: list[str]


@dataclass(frozen=True)
class ReadingScores:
    system: str
    hr_mae: float
    hr_stated: int
    rhythm_f1: float
    conduction_f1: float
    bleu: float
    rouge_l: float
    bertscore: float


def reference_reading(
    scp_codes: dict[str, float], measured: Measurements, statements: dict[str, ScpStatement]
) -> str:
    """The reading format, with the cardiologists' rhythm and conduction statements."""

    def group(name: str) -> list[str]:
        codes = sorted(
            (c for c in scp_codes if c in statements and statements[c].group == name),
            key=lambda c: statements[c].order,
        )
        return [statement_phrase(statements[c], scp_codes[c]) for c in codes]

    return reading_text(group("rhythm"), measured, [], group("conduction"))


def load_cases(config: ReadingEvalConfig, statements: dict[str, ScpStatement]) -> list[Case]:
    """The test folds' records, measured once; never a training or validation fold."""
    train = [f for f in range(1, 11) if f not in config.test_folds]
    index = DatasetConfig(
        ptbxl_dir=config.ptbxl_dir,
        limit=config.limit,
        splits={"train": train[:-1], "val": train[-1:], "test": config.test_folds},
    )
    cases = []
    for record in read_ptbxl_index(index)[0]:
        if record.split != "test":
            continue
        ecg = model.load(config.ptbxl_dir / record.record)
        measured = model.analyze(ecg)
        groups = {c: statements[c].group for c in record.scp_codes if c in statements}
        cases.append(
            Case(
                ecg_id=record.ecg_id,
                ecg=ecg,
                measured=measured,
                reference_text=reference_reading(
                    record.scp_codes, measured.measurements, statements
                ),
                rhythm=[c for c, g in groups.items() if g == "rhythm"],
                conduction=[c for c, g in groups.items() if g == "conduction"],
            )
        )
    if not cases:
        raise ValueError(f"{config.ptbxl_dir}: no records in folds {config.test_folds}")
    return cases


def constant_reading(pages_dir: Path) -> tuple[str, float]:
    """The most common reading of the training pages (median values, the most common
    rhythm and conduction), and its heart rate."""
    rows = read_pages(pages_dir, "train")
    if not rows:
        raise ValueError(f"{pages_dir}/train.jsonl has no pages for the constant baseline")
    values = {}
    for key in Measurements.model_fields:
        known = [r["rule_report"]["measurements"][key] for r in rows]
        known = [v for v in known if v is not None]
        values[key] = statistics.median(known) if known else None
    parts = Counter()
    for row in rows:
        text = row["target_reading"]
        rhythm = text[len("Rhythm: ") : text.index(". ")]
        conduction = text[text.index("Conduction: ") + len("Conduction: ") : -1]
        parts[(rhythm, conduction)] += 1
    (rhythm, conduction), _ = parts.most_common(1)[0]
    conduction_list = [] if conduction == "normal" else [conduction]
    text = reading_text([rhythm], Measurements(**values), [], conduction_list)
    return text, float(values["heart_rate_bpm"])


def model_texts(row: ModelRow, cases: Sequence[Case], config: ReadingEvalConfig) -> list[str]:
    """What the model writes for each page, served exactly as the gateway serves it."""
    from model.vlm.engine import VlmEngine

    served = config.model_dump(include={"longest_edge", "max_new_tokens", "batch_size", "device"})
    settings = VlmSettings(mode="vlm", model=row.model, adapter=row.adapter, **served)
    reports = VlmEngine(settings).interpret_batch([case.ecg for case in cases])
    return [report.generated_text or "" for report in reports]


def score(
    system: str,
    texts: Sequence[str],
    cases: Sequence[Case],
    constant_rate: float,
    bertscore: BertScoreConfig,
) -> ReadingScores:
    errors, stated, codes = [], 0, []
    for text, case in zip(texts, cases, strict=True):
        parsed = parse_generated_text(text)
        rates = [v.value for v in parsed.values if v.key == "heart_rate_bpm"]
        stated += bool(rates)
        truth = case.measured.measurements.heart_rate_bpm
        if truth is not None:
            errors.append(abs((rates[0] if rates else constant_rate) - truth))
        codes.append(parsed.codes)
    references = [case.reference_text for case in cases]
    return ReadingScores(
        system=system,
        hr_mae=statistics.fmean(errors),
        hr_stated=stated,
        rhythm_f1=macro_f1(codes, [c.rhythm for c in cases]),
        conduction_f1=macro_f1(codes, [c.conduction for c in cases]),
        bleu=bleu(texts, references),
        rouge_l=rouge_l(texts, references),
        bertscore=bertscore_f1(texts, references, bertscore),
    )


def macro_f1(predicted: Sequence[Sequence[str]], reference: Sequence[Sequence[str]]) -> float:
    """Mean F1 (x100) over the codes present in the reference; predictions of other codes
    count as false positives of nothing. (training/evaluate.py's code_f1 goes through
    sklearn, which takes a one-code indicator matrix for a binary target and scores the
    negative class: 97.7 for never naming the one code present.)"""
    codes = sorted({code for codes in reference for code in codes})
    scores = []
    for code in codes:
        hits = [(code in p, code in r) for p, r in zip(predicted, reference, strict=True)]
        tp = sum(p and r for p, r in hits)
        fp = sum(p and not r for p, r in hits)
        fn = sum(r and not p for p, r in hits)
        scores.append(2 * tp / (2 * tp + fp + fn))
    return 100.0 * statistics.fmean(scores) if scores else 0.0


def evaluate_reading(config: ReadingEvalConfig) -> tuple[list[ReadingScores], list[Case], dict]:
    """Every row's scores, the cases, and every row's texts (for the JSON output)."""
    statements = load_scp_statements(config.ptbxl_dir / STATEMENTS_CSV)
    groups = {code: s.group for code, s in statements.items()}
    cases = load_cases(config, statements)
    constant_text, constant_rate = constant_reading(config.pages_dir)
    texts = {
        ENGINE: [reading_target(case.measured, groups) for case in cases],
        COPY: [report_prompt()] * len(cases),
        CONSTANT: [constant_text] * len(cases),
    }
    for row in config.models:
        texts[row.name] = model_texts(row, cases, config)
    rows = [
        score(name, system_texts, cases, constant_rate, config.bertscore)
        for name, system_texts in texts.items()
    ]
    return rows, cases, texts


def markdown_table(rows: Sequence[ReadingScores], n: int) -> str:
    lines = [
        "| system | HR MAE bpm | rate stated | rhythm F1 | conduction F1 | BLEU | ROUGE-L | BERTScore |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mae = "0 (reference)" if r.system == ENGINE else f"{r.hr_mae:.1f}"
        lines.append(
            f"| {r.system} | {mae} | {r.hr_stated}/{n} | {r.rhythm_f1:.1f} | "
            f"{r.conduction_f1:.1f} | {r.bleu:.1f} | {r.rouge_l:.1f} | {r.bertscore:.1f} |"
        )
    return "\n".join(lines)


def write_outputs(
    output: Path, table: str, rows: Sequence[ReadingScores], cases: Sequence[Case], texts: dict
) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    document = {
        "scores": [r.__dict__ for r in rows],
        "cases": [
            {"ecg_id": c.ecg_id, "reference": c.reference_text}
            | {name: texts[name][i] for name in texts}
            for i, c in enumerate(cases)
        ],
    }
    output.with_suffix(".json").write_text(json.dumps(document, indent=2, ensure_ascii=False))
