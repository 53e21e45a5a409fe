"""Evaluation: each metric against hand-checkable cases, code extraction, the printed table."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from example_reports import sinus_report
from vlm_support import make_lora_adapter

from model.vlm.parse import parse_generated_text
from training.cli import main
from training.dataset import DatasetConfig, read_ptbxl_index, read_samples
from training.evaluate import (
    BertScoreConfig,
    bertscore_encoder,
    bertscore_f1,
    bleu,
    code_f1,
    rouge_l,
    scored_text,
)
from training.targets import load_scp_statements, report_target

REPO = Path(__file__).resolve().parent.parent
REFERENCE = "Rhythm: sinus rhythm.\nConduction: left anterior fascicular block."


def test_text_metrics_are_100_for_identical_text_and_lower_otherwise() -> None:
    assert bleu([REFERENCE], [REFERENCE]) == pytest.approx(100.0)
    assert rouge_l([REFERENCE], [REFERENCE]) == pytest.approx(100.0)
    other = "Rhythm: atrial fibrillation.\nInfarction: inferior myocardial infarction."
    assert bleu([other], [REFERENCE]) < 50.0
    assert rouge_l([other], [REFERENCE]) < 60.0


def test_bertscore_uses_the_offline_minilm_and_ranks_paraphrase_above_unrelated() -> None:
    config = BertScoreConfig()
    model_type, description = bertscore_encoder(config)
    assert Path(model_type, "model.safetensors").is_file()
    assert "all-MiniLM-L6-v2" in description and "layer 6" in description
    same = bertscore_f1([REFERENCE], [REFERENCE], config)
    close = bertscore_f1(
        ["Rhythm: sinus rhythm. Conduction: left anterior hemiblock."], [REFERENCE], config
    )
    far = bertscore_f1(["The weather in Lisbon is sunny today."], [REFERENCE], config)
    assert same == pytest.approx(100.0, abs=0.01)
    assert far < close < same
    both = bertscore_f1([REFERENCE, "  "], [REFERENCE, REFERENCE], config)
    assert both == pytest.approx(same / 2, abs=0.01)


def test_code_f1_with_one_code_scores_that_code_not_its_absence() -> None:
    """sklearn scored the negative class for a one-code set: 4 of 5 right-absent records
    gave AFIB a high F1 although the one AFIB was missed."""
    reference = [["AFIB"], [], [], [], []]
    predicted = [[], [], [], [], []]
    assert code_f1(predicted, reference, ["AFIB"]) == ({"AFIB": 0.0}, 0.0)
    per_code, _ = code_f1([["AFIB"], ["AFIB"], [], [], []], reference, ["AFIB"])
    assert per_code == {"AFIB": pytest.approx(100.0 * 2 / 3)}


def test_code_f1_per_code_and_macro_by_hand() -> None:
    predicted = [["SR"], ["SR", "AFIB"], ["LAD", "NORM"]]
    reference = [["SR"], ["AFIB"], ["SR"]]
    per_code, macro = code_f1(predicted, reference, ["SR", "AFIB", "NORM"])
    # SR: tp 1, fp 1, fn 1 -> F1 0.5; AFIB: tp 1 -> 1.0; NORM is not in the reference,
    # LAD is not a scored code.
    assert per_code == pytest.approx({"SR": 50.0, "AFIB": 100.0})
    assert macro == pytest.approx(75.0)


def test_the_gateway_parser_reads_back_every_code_of_every_target_report(shared_data: Path) -> None:
    """Targets and model/vlm/parse.py agree, so a model that writes the target scores 100."""
    directory = shared_data / "ptbxl"
    statements = load_scp_statements(directory / "scp_statements.csv")
    records, _ = read_ptbxl_index(DatasetConfig(ptbxl_dir=directory))
    measured = sinus_report().measurements
    for record in records:
        text = report_target(record.scp_codes, record.heart_axis, measured, statements)
        codes = {c for c in parse_generated_text(text).codes if c in statements}
        assert codes == set(record.scp_codes), (record.ecg_id, text)


TARGET = """Rhythm: sinus rhythm.
Conduction: first degree AV block; probable left anterior fascicular block.
Axis: left axis deviation.
Measurements: heart rate 72 bpm; PR 230 ms; QRS 98 ms; QT 400 ms; QTc (Bazett) 438 ms."""


def test_only_what_the_system_writes_itself_is_scored() -> None:
    """The Measurements line always goes; in a hybrid row, the statements the prompt gave too."""
    assert scored_text(TARGET, set()) == (
        "Rhythm: sinus rhythm.\n"
        "Conduction: first degree AV block; probable left anterior fascicular block.\n"
        "Axis: left axis deviation."
    )
    given = {"SR", "1AVB", "LAD"}
    assert scored_text(TARGET, given) == "Conduction: probable left anterior fascicular block."
    assert scored_text(TARGET, given | {"LAFB"}) == ""
    # Why: a copy of the measurement line alone scored high against the whole target.
    copied = TARGET.splitlines()[-1]
    assert bleu([copied], [TARGET]) > 20.0
    assert scored_text(copied, given) == ""


@pytest.fixture(scope="module")
def test_split(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of only the test-fold records among the first 60 (the others in no split)."""
    root = tmp_path_factory.mktemp("evaluate")
    dataset_yaml = root / "dataset.yaml"
    dataset_yaml.write_text(
        f"ptbxl_dir: {shared_data / 'ptbxl'}\n"
        f"output_dir: {root / 'dataset'}\n"
        "limit: 60\ndpi: 72\n"
        "splits: {train: [], val: [], test: [10]}\n"
    )
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["dataset", "--config", str(dataset_yaml)]) == 0
    return root / "dataset"


def _table_rows(printed: str) -> tuple[str, list[str]]:
    lines = printed.splitlines()
    header = next(line for line in lines if line.startswith("| system"))
    rows = lines[lines.index(header) + 2 :]
    return header, [row for row in rows if row.startswith("| ")]


def test_evaluate_prints_every_metric_for_the_rule_engine(
    test_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "evaluation"
    assert (
        main(
            [
                "evaluate",
                "--config",
                str(REPO / "config/training/evaluate.yaml"),
                "--dataset",
                str(test_split),
                "--output",
                str(output),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "BERTScore encoder: sentence-transformers/all-MiniLM-L6-v2" in printed
    header, rows = _table_rows(printed)
    for metric in ("BLEU", "ROUGE-L", "BERTScore F1", "macro F1", "F1 SR"):
        assert metric in header
    assert len(rows) == 2 and rows[0].startswith("| rule engine (baseline) | - | all statements")
    assert rows[1].startswith("| copy the prompt (hybrid) | hybrid | statements not in the prompt")
    numbers = [float(x) for x in re.findall(r"\d+\.\d", rows[0])]
    assert all(0.0 <= x <= 100.0 for x in numbers)
    saved = json.loads(output.with_suffix(".json").read_text())
    baseline, copy = saved["rows"]
    test_lines = (test_split / "test.jsonl").read_text().splitlines()
    assert baseline["samples"] == baseline["text_samples"] == len(test_lines) >= 3
    assert f"| {baseline['bleu']:.1f} | {baseline['rouge_l']:.1f} |" in rows[0]
    assert 0.0 < baseline["bertscore_f1"] <= 100.0
    # The floor: copying the prompt writes nothing of its own, and states the rule codes.
    assert copy["bleu"] == copy["rouge_l"] == copy["bertscore_f1"] == 0.0
    assert copy["per_code_f1"] == baseline["per_code_f1"]
    assert copy["text_samples"] <= copy["samples"]
    # Sinus rhythm is in most test records and the rule engine finds it.
    assert baseline["per_code_f1"]["SR"] > 50.0
    assert output.with_suffix(".md").read_text().startswith("BERTScore encoder:")


def test_each_adapter_adds_a_row_from_the_gateway_vlm_engine(
    test_split: Path, tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stage1 = make_lora_adapter(tiny, tmp_path / "stage1")
    stage2 = make_lora_adapter(tiny, tmp_path / "stage2")
    config = tmp_path / "evaluate.yaml"
    config.write_text(
        f"dataset_dir: {test_split}\nlimit: 2\n"
        f"vlm: {{model: {tiny}, mode: hybrid, device: cpu, max_new_tokens: 12, "
        "longest_edge: 512}\n"
    )
    assert (
        main(
            [
                "evaluate",
                "--config",
                str(config),
                "--stage1-adapter",
                str(stage1),
                "--stage2-adapter",
                str(stage2),
            ]
        )
        == 0
    )
    _, rows = _table_rows(capsys.readouterr().out)
    cells = [[cell.strip() for cell in row.split("|")[1:5]] for row in rows]
    assert cells == [
        ["rule engine (baseline)", "-", "all statements", "2"],
        ["copy the prompt (hybrid)", "hybrid", "statements not in the prompt", "2"],
        [f"{tiny.name} + stage 1 adapter (vlm)", "vlm", "all statements", "2"],
        [f"{tiny.name} + stage 2 adapter (hybrid)", "hybrid", "statements not in the prompt", "2"],
    ]


def test_a_vlm_row_scores_the_codes_its_own_text_states(test_split: Path, tiny: Path) -> None:
    """Never the measurement engine's codes that the gateway sends for unreadable text."""
    from model.vlm.settings import VlmSettings
    from training.evaluate import vlm_predictions

    samples = list(read_samples(test_split, "test"))[:2]
    settings = VlmSettings(model=str(tiny), max_new_tokens=12, longest_edge=512, device="cpu")
    predictions = vlm_predictions(
        samples,
        Path(json.loads((test_split / "manifest.json").read_text())["source"]["ptbxl_dir"]),
        settings,
    )
    for prediction in predictions:
        assert prediction.codes == parse_generated_text(prediction.text).codes
        assert prediction.readable == bool(prediction.codes)
    assert not all(p.readable for p in predictions)  # the untaught model writes nonsense


def test_a_missing_adapter_is_a_clear_error(
    test_split: Path, tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "evaluate.yaml"
    config.write_text(f"dataset_dir: {test_split}\nlimit: 1\nvlm: {{model: {tiny}, device: cpu}}\n")
    assert (
        main(["evaluate", "--config", str(config), "--stage1-adapter", str(tmp_path / "nowhere")])
        == 2
    )
    assert "nowhere" in capsys.readouterr().err
