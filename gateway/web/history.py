"""A report's change history in words for the report view: what a confirmation or
correction changed (statements added and removed, impression, measurements), or why an
attempt was refused. The history itself (who, when, before, after) is the store's."""

from __future__ import annotations

from gateway.overread import Change


def change_summary(change: Change) -> str:
    if change.action.startswith("refused"):
        return f"refused: {change.after.get('why', '')}".rstrip(": ")
    before, after = change.before, change.after
    if not before or not after:
        return ""
    parts = []
    old = {code: text for code, text in before.get("statements", [])}
    new = {code: text for code, text in after.get("statements", [])}
    added = [code for code in new if code not in old]
    removed = [code for code in old if code not in new]
    reworded = [code for code in new if code in old and new[code] != old[code]]
    for label, codes in (("added", added), ("removed", removed), ("reworded", reworded)):
        if codes:
            parts.append(f"{label} {', '.join(codes)}")
    if before.get("impression") != after.get("impression"):
        parts.append("impression edited")
    old_m, new_m = before.get("measurements", {}), after.get("measurements", {})
    for key in new_m:
        if old_m.get(key) != new_m[key]:
            parts.append(f"{key} {_value(old_m.get(key))} → {_value(new_m[key])}")
    return "; ".join(parts) or "no changes to the machine reading"


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"
