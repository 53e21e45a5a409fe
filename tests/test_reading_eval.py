"""`ecg-train evaluate-reading`: page reading on PTB-XL's fold 10 beside the measurement
engine, the copy-the-prompt floor and a constant, every row in one format."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from model.vlm.tiny_checkpoint import build_tiny_model
from training.augment import AugmentConfig
from training.cli import main
from training.reading_eval import CONSTANT, COPY, ENGINE, macro_f1
from training.stage0_pages import build_pages

LIMIT = 60  # the first 60 PTB-XL records hold 5 of fold 10


def test_macro_f1_scores_the_codes_present_and_nothing_else():
    assert macro_f1([[], []], [["IRBBB"], []]) == 0.0  # one code present, never named
    assert macro_f1([["IRBBB"], []], [["IRBBB"], []]) == 100.0
    assert macro_f1([["SR"], ["SR"]], [["SR"], ["AFIB"]]) == pytest.approx((200 / 3 + 0) / 2)
    assert macro_f1([["SR"]], [[]]) == 0.0


@pytest.fixture(scope="module")
def result(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    root = tmp_path_factory.mktemp("reading")
    build_pages(
        root / "pages", shared_data / "ptbxl", [1, 2, 3, 4, 5, 6, 7, 8], 0, 0, 50,
        AugmentConfig(), 0, limit=30,
    )  # fmt: skip
    build_tiny_model(root / "tiny")
    (root / "eval.yaml").write_text(
        f"ptbxl_dir: {shared_data / 'ptbxl'}\nlimit: {LIMIT}\npages_dir: {root / 'pages'}\n"
        "max_new_tokens: 8\n"
    )
    out = io.StringIO()
    argv = ["evaluate-reading", "--config", str(root / "eval.yaml"), "--output", str(root / "r")]
    argv += ["--system", f"tiny={root / 'tiny'}"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    return out.getvalue(), json.loads((root / "r.json").read_text())


def test_every_row_is_scored_on_fold_10_only(result):
    printed, document = result
    assert "5 records of PTB-XL folds [10]" in printed
    rows = {row["system"]: row for row in document["scores"]}
    assert list(rows) == [ENGINE, COPY, CONSTANT, "tiny"]
    assert [case["ecg_id"] for case in document["cases"]] == [9, 38, 40, 57, 59]
    assert all(f"| {name} |" in printed for name in rows)


def test_baselines_score_as_they_must(result):
    _, document = result
    rows = {row["system"]: row for row in document["scores"]}
    assert rows[COPY]["hr_stated"] == 0 and rows[COPY]["rhythm_f1"] == 0.0
    assert rows[CONSTANT]["hr_stated"] == 5 and rows[ENGINE]["hr_stated"] == 5
    assert rows[ENGINE]["hr_mae"] == 0.0
    # all five are sinus rhythm: the constant ("Sinus rhythm") names it every time
    assert rows[CONSTANT]["rhythm_f1"] == 100.0 and rows[ENGINE]["rhythm_f1"] > 50.0
    assert rows[ENGINE]["bleu"] > rows[CONSTANT]["bleu"] > rows[COPY]["bleu"]
    case = document["cases"][0]
    assert case["reference"].startswith("Rhythm: sinus rhythm. Heart rate ")
    assert case[COPY].startswith("Read this 12-lead ECG")
