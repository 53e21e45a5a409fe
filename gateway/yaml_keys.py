"""Keys written twice in a YAML settings file (gateway.yaml, routes.yaml, the training
configs). PyYAML silently keeps the last of two equal keys, so a second `tls:` section
would quietly undo the first; an admin wants the line instead.

It sits beside the readers in model/settings.py, which load the file; each reader turns
what this finds into its own error (file, line and key, like its other problems)."""

from __future__ import annotations

import yaml

from model.settings import dotted


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
