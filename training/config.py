"""Reading the YAML files under config/training/ into their pydantic models.

Each stage owns its schema (next to its code); this only turns a file into one,
with errors that name the file and the field, so a typo never falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class TrainingConfigError(Exception):
    """A training config file that cannot be used; the message names the file and field."""


def load_yaml_config(path: Path, schema: type[ModelT], **overrides: object) -> ModelT:
    """Validate `path` against `schema`; non-None `overrides` (command-line flags) win."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise TrainingConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TrainingConfigError(f"{path}: the file must be a mapping of settings")
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise TrainingConfigError(f"{path}: {problems}") from None
