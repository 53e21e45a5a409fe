"""Keys written twice in a YAML settings file (gateway.yaml, routes.yaml, the training
configs). PyYAML silently keeps the last of two equal keys, so a second `tls:` section
would quietly undo the first; an admin wants the line instead.

gateway.yaml and the training configs are read with `read_settings_once` (the first
repeat, as a YamlFileError like a syntax error); routes.yaml lists every repeat among its
other issues. (Its place would be model/settings.py's read_settings.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from model.settings import YamlDocument, YamlFileError, dotted, read_settings


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


def read_settings_once(path: Path | str) -> YamlDocument:
    """read_settings, with YamlFileError for the first key written twice."""
    document = read_settings(path)
    twice = duplicate_keys(document.root)
    if twice:
        line, key = twice[0]
        raise YamlFileError(path, line, f"{key}: key appears twice")
    return document
