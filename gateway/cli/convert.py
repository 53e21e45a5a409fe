"""`ecg-gateway convert INPUT -o OUT.dcm|OUT.xml`: the gateway as a format bridge.

Any format model.load reads (DICOM, WFDB, GE MUSE, Philips, HL7 aECG, SCP-ECG) out as a
DICOM ECG waveform object (12-lead, or General/Ambulatory ECG when the recording does
not fit the 12-lead IOD) or as HL7 aECG XML.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import model
from gateway.cli.analyze import ECG_FILE
from gateway.cli.dicom_warnings import values_unquoted
from gateway.durable import write_atomic
from model.aecg_write import ecg_to_aecg
from model.dicom_write import ecg_to_dicom

_WRITERS = {".dcm": "DICOM ECG waveform", ".xml": "HL7 aECG"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert an ECG file to DICOM (OUT.dcm) or HL7 aECG (OUT.xml)"
    )
    p.add_argument("input", help=ECG_FILE)
    p.add_argument("-o", "--output", required=True, help="OUT.dcm or OUT.xml")
    p.set_defaults(func=values_unquoted(run))


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    kind = _WRITERS.get(out.suffix.lower())
    if kind is None:
        print(f"error: {out}: output must end in .dcm or .xml", file=sys.stderr)
        return 2
    ecg = model.load(args.input)
    try:
        data = _dicom_bytes(ecg) if out.suffix.lower() == ".dcm" else ecg_to_aecg(ecg)
    except ValueError as exc:  # no DICOM ECG IOD holds it, or a lead beyond 16 bits
        print(f"error: {args.input}: cannot be written as {kind}: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, data)
    print(
        f"wrote {out} ({kind}, {len(ecg.lead_names)} leads, {ecg.sampling_rate:g} Hz, "
        f"{ecg.duration_s:.1f} s, {len(data)} bytes)"
    )
    return 0


def _dicom_bytes(ecg: model.Ecg) -> bytes:
    buffer = io.BytesIO()
    ecg_to_dicom(ecg).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
