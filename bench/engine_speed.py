"""Engine speed against a base commit, with every output required to be identical.

Runs measure + interpret on the tuning sets (LUDB 1-160, CinC 2021, the WFDB samples
without muse-*, synthetic rhythms of the tuning seeds 1 and 3) in two worker
processes, one importing this tree and one a base tree (a worktree of the base
commit), alternating record by record on one core, timed in process CPU time.
Every value, null reason, statement (code, text, evidence), the impression and the
measurement's internals (fiducials, amplitudes, beats, rhythm, median beats) must be
bit-for-bit the same; any difference is listed and the exit status is 1.

The base must have model.measurement_engine.without_p_wave_in_atrial_arrhythmia
(9fd3895 or later), and both trees draw the synthetic rhythms from this tree's list.

    git worktree add /tmp/base <commit>
    .venv/bin/python bench/engine_speed.py /tmp/base [--ludb N] [--repeat N]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("ECG_DATA", "/work/shared/data"))
TUNING_SEEDS = (1, 3)


def record_keys(ludb: int, synthetic: int | None = None) -> list[str]:
    keys = [f"ludb:{n}" for n in range(1, ludb + 1)]
    keys += [f"file:{h.with_suffix('')}" for h in sorted((DATA / "cinc2021").glob("*.hea"))]
    samples = sorted((DATA / "wfdb-samples").glob("*.hea"))
    keys += [f"file:{h.with_suffix('')}" for h in samples if not h.name.startswith("muse-")]
    for seed in TUNING_SEEDS:
        n = len(_specs(seed))
        keys += [f"synth:{seed}:{i}" for i in range(min(n, n if synthetic is None else synthetic))]
    return keys


@functools.cache
def _specs(seed: int) -> list:
    sys.path.insert(0, str(Path(__file__).parent))
    from synthetic_rhythm_set import synthetic_rhythm_specs

    return synthetic_rhythm_specs(seed)


# ---------------------------------------------------------------- worker ----


def _load(key: str):
    import model
    from model.rhythm_paced import PacedSpec, paced_ecg
    from model.rhythm_synthetic import rhythm_ecg

    kind, _, rest = key.partition(":")
    if kind == "ludb":
        return model.load(DATA / "ludb" / "data" / rest)
    if kind == "file":
        return model.load(rest)
    seed, index = (int(x) for x in rest.split(":"))
    spec = _specs(seed)[index][1]
    return (paced_ecg(spec) if isinstance(spec, PacedSpec) else rhythm_ecg(spec))[0]


def canonical(value: object) -> object:
    """A JSON-able form that differs wherever the value differs (floats by repr,
    arrays by dtype, shape and a hash of their bytes)."""
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
        return f"array {value.dtype} {value.shape} {digest}"
    if isinstance(value, float | np.floating):
        return repr(float(value)) + ("" if isinstance(value, float) else f" {type(value)}")
    if isinstance(value, np.integer | np.bool_):
        return f"{value!r} {type(value).__name__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return canonical(value.model_dump())
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return f"{type(value).__name__} {value!r}"


def worker() -> None:
    """Answer keys on stdin with one JSON line each: CPU ms and the canonical outputs."""
    sys.path.insert(0, str(Path(__file__).parent))
    from model.measure import measure
    from model.measurement_engine import impression, without_p_wave_in_atrial_arrhythmia
    from model.statements import interpret

    for line in sys.stdin:
        key = line.strip()
        ecg = _load(key)
        start = time.process_time()
        measured = measure(ecg)
        statements = interpret(measured, sex=ecg.metadata.patient_sex)
        seconds = time.process_time() - start
        values, null_reasons = without_p_wave_in_atrial_arrhythmia(measured, statements)
        out = {
            "values": canonical(values),
            "null_reasons": canonical(null_reasons),
            "statements": canonical(statements),
            "impression": impression(statements, measured),
            "measurement": canonical(measured),
        }
        print(json.dumps({"ms": seconds * 1000.0, "out": out}), flush=True)


# ---------------------------------------------------------------- driver ----


def _start(tree: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    script = tree / "bench" / "engine_speed.py"
    if not script.exists():  # a base without this script runs this one on its code
        script = Path(__file__).resolve()
    return subprocess.Popen(
        [sys.executable, str(script), "--worker"],
        cwd=tree,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _ask(proc: subprocess.Popen, key: str) -> dict:
    proc.stdin.write(key + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def _differences(a: object, b: object, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for k in sorted(set(a) | set(b)):
            found += _differences(a.get(k), b.get(k), f"{path}.{k}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: base {b!r} != this {a!r}"]


def _stats(ms: list[float]) -> str:
    return f"{np.median(ms):6.2f} {np.percentile(ms, 95):6.2f} {np.mean(ms):6.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="a worktree of the base commit")
    parser.add_argument("--ludb", type=int, default=160, help="LUDB records 1..N")
    parser.add_argument("--synthetic", type=int, help="synthetic ECGs per seed (all)")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes per record")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # the workers inherit it
    keys = record_keys(args.ludb, args.synthetic)
    this, base = _start(Path(__file__).resolve().parents[1]), _start(args.base.resolve())
    times: dict[str, list[float]] = {"base": [], "this": []}
    groups: dict[str, dict[str, list[float]]] = {}
    failures = []
    for key in keys:
        group = key.split(":")[0] if not key.startswith("file:") else Path(key).parent.name
        ours, theirs = [], []
        for _ in range(args.repeat):
            b, t = _ask(base, key), _ask(this, key)
            theirs.append(b["ms"])
            ours.append(t["ms"])
            diff = _differences(t["out"], b["out"])
            if diff:
                failures.append((key, diff))
        for name, ms in (("base", min(theirs)), ("this", min(ours))):
            times[name].append(ms)
            groups.setdefault(group, {"base": [], "this": []})[name].append(ms)
    for proc in (this, base):
        proc.stdin.close()
        proc.wait()
    print(f"{len(keys)} ECGs, ms CPU per measure+interpret, one core (median p95 mean)")
    for group, by in [*groups.items(), ("all", times)]:
        print(
            f"{group:18s} n={len(by['base']):4d}  base {_stats(by['base'])}   this {_stats(by['this'])}"
        )
    seen = {key for key, _ in failures}
    print(f"outputs identical on {len(keys) - len(seen)} of {len(keys)} ECGs")
    for key, diff in failures[:20]:
        print(key, *diff[:5], sep="\n  ")
    return 1 if failures else 0


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker()
    else:
        sys.exit(main())
