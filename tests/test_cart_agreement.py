"""bench/cart_agreement.py: the engine against the measurements carts stored in their files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "cart_agreement.py"


def _module():
    spec = importlib.util.spec_from_file_location("cart_agreement", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_each_cart_file_gives_its_own_intervals(shared_data: Path) -> None:
    """The cart's PR, QRS and QT as its file states them (Philips PageWriter TC, Philips
    HeartStart MRx, Mortara), each beside an engine value."""
    carts = _module()
    values = carts.run_carts(shared_data)
    stated = {
        "2020-5-18_15-48-11.xml": {"PR": 164, "QRS": 102, "QT": 399},
        "129DYPRG.XML": {"PR": 151, "QRS": 135, "QT": 476},
        "fda_example_aecg.xml": {"PR": 148, "QRS": 120, "QT": 420},
    }
    for name, intervals in stated.items():
        for label, cart_value in intervals.items():
            found = [(c, e) for n, lab, c, e in values if n == name and lab == label]
            assert len(found) == 1, (name, label)
            cart, engine = found[0]
            assert cart == cart_value, (name, label)
            assert engine is not None and 0 < engine < 600, (name, label)


def test_spread_is_the_75th_percentile_of_absolute_differences() -> None:
    carts = _module()
    values = [("a", "PR", 150.0, 160.0), ("b", "PR", 150.0, 146.0), ("c", "PR", 150.0, 152.0)]
    values += [("d", "PR", 150.0, 150.0), ("e", "PR", None, 150.0), ("a", "QT", 400.0, 405.0)]
    rows = {row[1].split(":")[0]: row for row in carts.spread_rows(values, "Carts", "cart")}
    assert set(rows) == {"PR", "QT"}  # no QRS given: no row
    assert rows["PR"][2:4] == ["4", "5.5"]  # |10|, |4|, |2|, |0|: 75th percentile 5.5
    assert rows["PR"][6] == "yes"  # within the spread's upper end, 6 ms
    assert rows["QT"][3] == "5.0"
