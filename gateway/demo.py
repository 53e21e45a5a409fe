"""`make demo`: the main job on embedded defaults, runnable on a fresh machine.

Uses the real sample ECGs from ../shared/data when present (or $ECG_GATEWAY_DATA),
and a synthetic ECG otherwise, so a newcomer always sees the whole flow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import model
from model.ecg import Ecg
from model.errors import EcgDecodeError

_SAMPLE_INPUTS = (
    "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm",
    "vendor/muse/muse-sinus.xml",
    "ptbxl/records500/00000/00001_hr",
    "ludb/data/1",
    "cinc2021/E07500",
)


@dataclass(frozen=True)
class DemoInput:
    name: str
    ecg: Ecg


def shared_data_dir() -> Path:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return Path(os.environ.get("ECG_GATEWAY_DATA", default))


def sample_inputs(data_dir: Path) -> list[DemoInput]:
    """The real samples that exist here, or one synthetic ECG when none do."""
    found = []
    for relative in _SAMPLE_INPUTS:
        path = data_dir / relative
        if path.exists() or path.with_suffix(".hea").exists():
            found.append(DemoInput(relative, model.load(path)))
    if found:
        return found
    from model.synthetic import synthetic_ecg

    return [DemoInput("synthetic sinus rhythm", synthetic_ecg())]


def run_demo(out_dir: Path) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        inputs = sample_inputs(shared_data_dir())
    except EcgDecodeError as exc:
        print(f"error: {exc}")
        return 1
    for index, item in enumerate(inputs, start=1):
        report = model.analyze(item.ecg)
        png = out_dir / f"{index:02d}.png"
        pdf = out_dir / f"{index:02d}.pdf"
        png.write_bytes(model.render_png(item.ecg))
        pdf.write_bytes(model.render_pdf(item.ecg))
        m = report.measurements
        print(f"[{index}] {item.name}")
        print(f"    HR {m.heart_rate_bpm} bpm, PR {m.pr_ms} ms, QRS {m.qrs_ms} ms, "
              f"QT/QTc {m.qt_ms}/{m.qtc_bazett_ms} ms, axis {m.qrs_axis_deg} deg")
        print(f"    {report.impression}")
        print(f"    image: {png.resolve()}  pdf: {pdf.resolve()}")
    return 0
