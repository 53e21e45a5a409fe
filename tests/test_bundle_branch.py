"""Bundle branch block criteria on median beats drawn lead by lead from the synthetic
ECG's wave shape (model.synthetic.lobe), the shapes that LUDB's blocks showed:
the ST segment leaving the baseline at the QRS end, a notched R, an rSr' in V1."""

from __future__ import annotations

import numpy as np
import pytest

from model.beats import FS
from model.measure import EcgMeasurement
from model.measure.amplitudes import lead_amplitudes
from model.measure.result import Fiducials
from model.statements import (
    left_bundle_pattern,
    right_bundle_pattern,
    ventricular_conduction_statements,
)
from model.synthetic import lobe

QRS_ON_MS = 200.0
T = np.arange(0.0, 600.0, 1000.0 / FS)  # ms


def _median_lead(qrs_ms: float, waves: list[tuple[float, float, float]], st_mv: float = 0.0):
    """One lead's median beat: waves (mV, start, duration in ms from QRS onset), then an
    ST segment that leaves the baseline 16 ms before the QRS end and reaches st_mv."""
    x = np.zeros_like(T)
    for mv, start, duration in waves:
        x += mv * lobe(T, QRS_ON_MS + start, duration)
    end = QRS_ON_MS + qrs_ms
    ramp = np.clip((T - (end - 16.0)) / 40.0, 0.0, 1.0)
    return x + st_mv * np.sin(0.5 * np.pi * ramp)


def _fiducials(qrs_ms: float) -> Fiducials:
    on = int(QRS_ON_MS * FS / 1000)
    return Fiducials(qrs_on=on, qrs_off=on + int(qrs_ms * FS / 1000))


def _measured(qrs_ms: float, leads: dict[str, np.ndarray]) -> EcgMeasurement:
    m = EcgMeasurement()
    m.values.qrs_ms = qrs_ms
    fid = _fiducials(qrs_ms)
    m.fiducials = fid
    m.amplitudes = {name: lead_amplitudes(x, fid) for name, x in leads.items()}
    return m


# A complete left bundle branch block as LUDB 24 and 116 show it: QS in V1 and V2
# with the ST segment rising at the QRS end, a broad R in I and V6 whose ST falls.
LBBB = {
    "V1": _median_lead(150, [(-1.0, 5, 110)], st_mv=0.4),
    "V2": _median_lead(150, [(-1.2, 5, 110)], st_mv=0.5),
    "I": _median_lead(150, [(1.0, 10, 110)], st_mv=-0.3),
    "V6": _median_lead(150, [(1.2, 10, 110)], st_mv=-0.3),
}


def test_a_rising_st_segment_at_the_qrs_end_is_not_an_r_wave() -> None:
    """The QS of V1 ends on its ST elevation: no r, no r' (a terminal "r" there made
    the right bundle pattern match a left bundle branch block, LUDB 24)."""
    v1 = lead_amplitudes(LBBB["V1"], _fiducials(150))
    assert v1.r == 0.0 and v1.r_prime == 0.0
    assert v1.q == v1.s < -0.5
    lead_i = lead_amplitudes(LBBB["I"], _fiducials(150))
    assert lead_i.s == 0.0 and lead_i.r > 0.5


def test_left_bundle_branch_block_matches_only_the_left_pattern() -> None:
    m = _measured(150, LBBB)
    assert left_bundle_pattern(m) is not None
    assert right_bundle_pattern(m) is None
    assert [s.code for s in ventricular_conduction_statements(m)] == ["CLBBB"]


def test_notched_r_peak_time_runs_to_the_second_summit() -> None:
    """A notched R in I and V6 whose notch dips below the baseline (LUDB 44): the R
    peak time is the time to the R' (AHA), so the block is CLBBB, not IVCD."""
    notched = [(0.4, 0, 50), (-0.2, 45, 20), (1.0, 60, 70)]
    m = _measured(
        140,
        {
            "V1": _median_lead(140, [(-1.0, 5, 125)], st_mv=0.3),
            "I": _median_lead(140, notched),
            "V6": _median_lead(140, notched),
        },
    )
    assert m.amplitudes["V6"].r_peak_ms >= 90
    assert [s.code for s in ventricular_conduction_statements(m)] == ["CLBBB"]


def test_rs_in_v6_reads_the_r_peak_time_in_lead_i() -> None:
    """A displaced transition (LUDB 51): RS in V6 with its R peak at 50 ms, the broad R
    of lead I peaking at 75 ms."""
    m = _measured(
        150,
        {
            "V1": _median_lead(150, [(-1.0, 10, 130)], st_mv=0.3),
            "I": _median_lead(150, [(1.0, 5, 140)]),
            "V6": _median_lead(150, [(1.0, 10, 80), (-0.4, 90, 50)]),
        },
    )
    assert m.amplitudes["V6"].r_peak_ms < 60 <= m.amplitudes["I"].r_peak_ms
    assert [s.code for s in ventricular_conduction_statements(m)] == ["CLBBB"]


def test_rsr_prime_in_v1_is_never_a_left_bundle_branch_block() -> None:
    """rSr' in V1 with upright I and V6 and no S there (LUDB 125, QRS 122 ms): neither
    bundle pattern holds, so IVCD, not the left block the QS test alone gave."""
    m = _measured(
        124,
        {
            "V1": _median_lead(124, [(0.05, 0, 24), (-0.45, 24, 50), (0.18, 76, 40)]),
            "I": _median_lead(124, [(0.7, 20, 90)]),
            "V6": _median_lead(124, [(0.7, 20, 90)]),
        },
    )
    assert m.amplitudes["V1"].r_prime > 0.1
    assert left_bundle_pattern(m) is None
    assert [s.code for s in ventricular_conduction_statements(m)] == ["IVCD"]


@pytest.mark.parametrize("qrs_ms, code", [(104, "IRBBB"), (130, "CRBBB")])
def test_terminal_r_in_v2_alone_is_the_right_bundle_pattern(qrs_ms: float, code: str) -> None:
    """The AHA's rsr' is in V1 or V2: a V1 whose r' is too small to count still makes
    the pattern where V2 shows it, with the terminal S in I and V6."""
    r, s, r_prime = 0.3 * qrs_ms, 0.35 * qrs_ms, 0.35 * qrs_ms
    m = _measured(
        qrs_ms,
        {
            "V1": _median_lead(qrs_ms, [(0.2, 0, r), (-0.8, r, s)]),
            "V2": _median_lead(qrs_ms, [(0.2, 0, r), (-0.6, r, s), (0.4, r + s, r_prime)]),
            "I": _median_lead(qrs_ms, [(0.8, 0, r + s), (-0.3, r + s, r_prime)]),
            "V6": _median_lead(qrs_ms, [(0.8, 0, r + s), (-0.3, r + s, r_prime)]),
        },
    )
    found = ventricular_conduction_statements(m)
    assert [s.code for s in found] == [code]
    assert found[0].evidence.values["v2_r_prime_mv"] > 0.3


def test_a_narrow_r_in_lead_i_is_not_a_left_bundle_branch_block() -> None:
    """QS in V1 and a wide QRS, but lead I's R is narrow and followed by an S (LUDB 33,
    a hypertrophied left ventricle): the AHA's broad R in I is missing, so IVCD."""
    m = _measured(
        122,
        {
            "V1": _median_lead(122, [(-0.8, 30, 80)]),
            "I": _median_lead(122, [(0.7, 40, 34), (-0.2, 74, 30)]),
            "V6": _median_lead(122, [(0.8, 40, 50), (-0.1, 90, 20)]),
        },
    )
    assert m.amplitudes["I"].upright_fraction < 0.3
    assert m.amplitudes["V6"].r_peak_ms >= 60  # the old rule's only timing test holds
    assert left_bundle_pattern(m) is None
    assert [s.code for s in ventricular_conduction_statements(m)] == ["IVCD"]
