"""Reading the YAML files under config/training/ into their pydantic models.

Each stage owns its schema (next to its code); this only turns a file into one, read the
way gateway.yaml is (model/settings.py), with errors that name the file, the line and the
field, so a typo never falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from model.settings import YamlFileError, dotted, line_at, read_settings

ModelT = TypeVar("ModelT", bound=BaseModel)


class TrainingConfigError(Exception):
    """A training config file that cannot be used; the message names the file and field."""


def load_yaml_config(path: Path, schema: type[ModelT], **overrides: object) -> ModelT:
    """Validate `path` against `schema`; non-None `overrides` (command-line flags) win."""
    try:
        document = read_settings(path)
    except YamlFileError as exc:
        raise TrainingConfigError(str(exc)) from None
    flags = {key: value for key, value in overrides.items() if value is not None}
    data = {**document.data, **flags}
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, document.root, set(flags)) for error in exc.errors())
        raise TrainingConfigError(f"{path}: {problems}") from None


def _problem(error: dict, root: object, flags: set[str]) -> str:
    """`line 4: lora.r: Input should be...`, or `(command line)` for a flag's value."""
    loc = error["loc"]
    field = dotted(loc) or "(top level)"
    if loc and loc[0] in flags:
        return f"(command line) {field}: {error['msg']}"
    line, _ = line_at(root, loc)
    return f"line {line}: {field}: {error['msg']}" if line else f"{field}: {error['msg']}"
