"""Loading SmolVLM (Idefics3) with transformers: base model from the hub or a local
directory, an optional PEFT LoRA adapter, 4-bit NF4 through bitsandbytes when asked.

Anything missing becomes one exception, VlmUnavailable, whose message says exactly what
is missing and how to provide it: the gateway shows it and then falls back or holds
jobs as configured. Training loads its base model here too, so the adapter it writes
fits the model the gateway serves.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig
from transformers.utils import is_torchvision_available

from model.vlm.settings import DEFAULT_MODEL, LoadSpec, VlmUnavailable

__all__ = [
    "LoadedVlm",
    "adapter_base_precision",
    "check_vlm_files",
    "load_model",
    "load_processor",
    "load_vlm",
    "model_directory",
    "resolve_device",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# What a model directory needs; not the ONNX and GGUF exports some hub repositories carry.
HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt"]


def _how_to_get(repo_id: str) -> str:
    return (
        f"download {repo_id} where the Hugging Face hub is reachable "
        f"(`huggingface-cli download {repo_id} --local-dir DIR`) and set the model to DIR, "
        "or build a random-weight test model with `ecg-gateway model tiny DIR`"
    )


HOW_TO_GET_A_MODEL = _how_to_get(DEFAULT_MODEL)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class LoadedVlm:
    processor: Any
    model: Any
    device: torch.device
    dtype: torch.dtype
    label: str  # names model, adapter and quantisation, for Report.engine.version


def load_vlm(spec: LoadSpec) -> LoadedVlm:
    """Processor and model ready for generation; raises VlmUnavailable with the remedy."""
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    source = check_vlm_files(spec)
    processor = load_processor(source)
    model = load_model(source, spec, device, dtype)
    label = _label(spec)
    if spec.adapter is not None:
        model = _apply_adapter(model, Path(spec.adapter), merge=spec.quantization == "none")
        label += _precision_note(Path(spec.adapter), spec)
    model.eval()
    return LoadedVlm(processor, model, device, dtype, label)


def check_vlm_files(spec: LoadSpec) -> str:
    """The model directory, once it and the adapter have every file they need.

    Cheap (no weights are read), so the gateway runs it at start and says at once what
    is missing, instead of on the first ECG."""
    source = model_directory(spec.model)
    if spec.adapter is not None:
        _check_adapter_dir(Path(spec.adapter))
    return source


def resolve_device(name: str) -> torch.device:
    """The torch device of a configured name ("auto", "cpu", "cuda", "cuda:N"): "auto" is
    the GPU where torch sees one; a configured GPU that is not there is VlmUnavailable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VlmUnavailable(
            f"device {name!r} is configured but torch sees no CUDA GPU "
            f"(torch {torch.__version__}); set device to 'cpu' or 'auto'"
        )
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """bf16 on a GPU (SmolVLM's training precision), float32 on the CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[name]


def model_directory(reference: str) -> str:
    """The checked local directory of the model: `reference` itself or its hub snapshot.

    `reference` is a directory or a hub id (taken from the local Hugging Face cache, else
    downloaded); VlmUnavailable says what is missing and how to get a model."""
    path = Path(reference).expanduser()
    if not path.exists() and HUB_ID.match(reference):
        path = Path(_hub_snapshot(reference))
    elif not path.exists():
        raise VlmUnavailable(f"no model at {reference}: {HOW_TO_GET_A_MODEL}")
    if not path.is_dir():
        raise VlmUnavailable(f"model {reference!r} is a file, not a model directory")
    missing = _missing_model_files(path)
    if missing:
        raise VlmUnavailable(
            f"{path} is not a complete model directory: {'; '.join(missing)}. {HOW_TO_GET_A_MODEL}"
        )
    return str(path)


def _hub_snapshot(repo_id: str) -> str:
    """The cached snapshot, else a download; one quick failure when the hub is unreachable.

    (from_pretrained with a hub id retries every file for minutes without a network.)
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    try:
        return snapshot_download(repo_id, allow_patterns=HUB_FILES)
    except Exception as exc:  # network, HTTP and cache errors come in many types
        raise VlmUnavailable(
            f"no directory {repo_id} here, and {repo_id!r} is not in the local Hugging Face "
            "cache and cannot be downloaded "
            f"({type(exc).__name__}: {_first_line(exc)}); {_how_to_get(repo_id)}"
        ) from exc


def _missing_model_files(path: Path) -> list[str]:
    names = {p.name for p in path.iterdir()}
    missing = []
    if "config.json" not in names:
        missing.append("no config.json")
    if not names & set(WEIGHT_FILES):
        missing.append(f"no weights ({' or '.join(WEIGHT_FILES[::2])})")
    if not names & {"processor_config.json", "preprocessor_config.json"}:
        missing.append("no processor_config.json or preprocessor_config.json")
    if not names & {"tokenizer.json", "tokenizer_config.json"}:
        missing.append("no tokenizer.json")
    return missing


def _check_adapter_dir(path: Path) -> None:
    how = "train one with `ecg-train stage2`, or remove the adapter setting to serve the base model"
    if not path.is_dir():
        raise VlmUnavailable(f"no LoRA adapter at {path}: {how}")
    names = {p.name for p in path.iterdir()}
    if "adapter_config.json" not in names or not names & set(ADAPTER_WEIGHTS):
        raise VlmUnavailable(
            f"{path} is not a PEFT adapter directory (needs adapter_config.json and "
            f"{ADAPTER_WEIGHTS[0]}): {how}"
        )


def load_processor(source: str) -> Any:
    """The Idefics3 processor of a model directory (see model_directory), padding on the
    left for batched generation. The PIL image backend unless torchvision is installed
    (both give the same pixels)."""
    backend = "torchvision" if is_torchvision_available() else "pil"
    try:
        processor = AutoProcessor.from_pretrained(source, backend=backend)
    except (OSError, ValueError, KeyError) as exc:
        raise VlmUnavailable(_load_error(source, "processor", exc)) from exc
    processor.tokenizer.padding_side = "left"  # batched generation continues on the right
    return processor


def load_model(source: str, spec: LoadSpec, device: torch.device, dtype: torch.dtype) -> Any:
    """The base model of a model directory on `device` in `dtype`, in 4-bit NF4 when
    spec.quantization is "4bit"; no adapter (load_vlm applies spec.adapter, training
    adds its own). A model that cannot be loaded is VlmUnavailable."""
    kwargs: dict[str, Any] = {"dtype": dtype}
    if spec.quantization == "4bit":
        kwargs["quantization_config"] = _four_bit_config(dtype)
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise VlmUnavailable(_load_error(source, "model", exc)) from exc
    return model if spec.quantization == "4bit" else model.to(device)


# Kept in the compute dtype under 4-bit: the vision tower and connector (a page's fine
# detail, and weights no stage trains), and the output head (transformers' own default).
FOUR_BIT_SKIPPED = ["model.vision_model", "model.connector", "lm_head"]  # Idefics3 names
# What an adapter's model card (training/qlora.py) says its base was trained in.
BASE_PRECISION = re.compile(r"^base_precision:\s*(\S+)\s*$", re.MULTILINE)
NF4 = "nf4"


def _four_bit_config(compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """QLoRA's NF4 with double quantisation for the text model; bitsandbytes >= 0.45 also
    runs it on the CPU."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise VlmUnavailable(
            "4-bit quantisation needs the bitsandbytes package: "
            "pip install 'bitsandbytes>=0.45', or set quantization to 'none'"
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=FOUR_BIT_SKIPPED,
    )


def _apply_adapter(model: Any, path: Path, merge: bool) -> Any:
    """The adapter on the base; merged into full-precision weights for faster decoding."""
    from peft import PeftModel

    base_named = json.loads((path / "adapter_config.json").read_text()).get(
        "base_model_name_or_path"
    )
    if base_named and Path(base_named).name != Path(model.name_or_path).name:
        log.warning(
            "adapter %s was trained on %s, serving it on %s", path, base_named, model.name_or_path
        )
    try:
        adapted = PeftModel.from_pretrained(model, str(path))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise VlmUnavailable(
            f"{path}: the adapter does not fit the model {model.name_or_path}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    return adapted.merge_and_unload() if merge else adapted


def adapter_base_precision(path: Path) -> str | None:
    """The base precision the adapter's model card records ("nf4", "float32"...), if any."""
    card = path / "README.md"
    match = BASE_PRECISION.search(card.read_text(encoding="utf-8")) if card.is_file() else None
    return match.group(1) if match else None


def _precision_note(path: Path, spec: LoadSpec) -> str:
    """A warning, and a note for the report's engine label, where the adapter is served on a
    base of another precision than it was trained on: its outputs differ from training's
    (an adapter trained on the NF4 base, merged into full-precision weights)."""
    trained = adapter_base_precision(path)
    served = NF4 if spec.quantization == "4bit" else "full precision"
    if trained is None or (trained == NF4) == (served == NF4):
        return ""
    log.warning(
        "adapter %s was trained on a %s base and is served on a %s one: its outputs differ "
        "from training's; set quantization to %s to serve it as trained",
        path,
        trained,
        served,
        "4bit" if trained == NF4 else "none",
    )
    return f" (adapter trained on {trained})"


def _load_error(source: str, part: str, exc: Exception) -> str:
    return f"{source}: cannot load the {part}: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no detail"


def _label(spec: LoadSpec) -> str:
    label = Path(spec.model).name or spec.model
    if spec.adapter is not None:
        label += f"+{Path(spec.adapter).name}"
    return label + (" nf4" if spec.quantization == "4bit" else "")
