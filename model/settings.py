"""Settings files, read the same way everywhere: a strict pydantic base and YAML whose
errors name their line.

In model/ because the engines' own settings (rules, VLM) use the strict base, and every
other package (gateway, training) already depends on model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict


class StrictSettings(BaseModel):
    """Unknown keys are errors (a typo must not fall back to a default); read once, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class YamlFileError(Exception):
    """A settings file that cannot be read or is not valid YAML; `line` is 1-based, 0 if
    unknown, and `problem` says what is wrong without the file name."""

    def __init__(self, path: Path | str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}: line {line}" if line else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class YamlDocument:
    """A parsed file: the plain data, and the node tree that knows each value's line."""

    data: Any
    root: yaml.Node | None


def read_yaml(path: Path | str) -> YamlDocument:
    """Read and parse `path`; unreadable files and YAML syntax errors raise YamlFileError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlFileError(path, 0, f"cannot read: {exc}") from None
    try:
        return YamlDocument(yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlFileError(
            path, mark.line + 1 if mark else 0, f"invalid YAML: {problem}"
        ) from None


def read_settings(path: Path | str) -> YamlDocument:
    """read_yaml for a settings file: a mapping of settings (an empty file is no settings)
    with no key written twice; anything else raises YamlFileError. PyYAML silently keeps
    the last of two equal keys, so a second `tls:` section would quietly undo the first;
    an admin wants the line instead."""
    document = read_yaml(path)
    if document.data is None:
        return YamlDocument({}, document.root)
    if not isinstance(document.data, dict):
        raise YamlFileError(path, 1, "the file must be a mapping of settings")
    twice = duplicate_keys(document.root)
    if twice:
        line, key = twice[0]
        raise YamlFileError(path, line, f"{key}: key appears twice")
    return document


def duplicate_keys(node: yaml.Node | None, path: tuple = ()) -> list[tuple[int, str]]:
    """(line, dotted key) of each key that repeats one before it in the same mapping."""
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append((key.start_mark.line + 1, dotted((*path, key.value))))
            seen.add(key.value)
            found.extend(duplicate_keys(value, (*path, key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(duplicate_keys(item, (*path, index)))
    return found


def line_at(root: yaml.Node | None, loc: tuple | list) -> tuple[int, tuple]:
    """The 1-based line of the deepest YAML node along a pydantic error location, and
    the part of the location that was found (0 and () without a node tree).

    A mapping step points at its key (so a missing field points at its parent's key).
    Pydantic puts a discriminated union's tag into the location; it is skipped where the
    mapping's own `type:` says the same.
    """
    if root is None:
        return 0, ()
    node, anchor, walked = root, root, ()
    tag_skipped = False
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            if not tag_skipped and _mapping_type(node) == part:
                tag_skipped = True
                continue
            tag_skipped = False
            child = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if child is None:
                return anchor.start_mark.line + 1, (*walked, part)
            anchor, node = child
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            anchor = node = node.value[part]
        else:
            return anchor.start_mark.line + 1, (*walked, part)
        walked = (*walked, part)
    return anchor.start_mark.line + 1, walked


def dotted(path: tuple | list) -> str:
    """`rules[2].match.calling_ae`: a location as an admin writes it."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _mapping_type(node: yaml.MappingNode) -> str | None:
    for key, value in node.value:
        if key.value == "type" and isinstance(value, yaml.ScalarNode):
            return value.value
    return None
