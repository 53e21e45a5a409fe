"""The synthetic rhythm generator draws what its ground truth says (model.rhythm_synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from model.rhythm_synthetic import RhythmSpec, ectopic_run, rhythm_ecg


def _rr(onsets: tuple[float, ...]) -> np.ndarray:
    return np.diff(np.asarray(onsets))


def test_same_spec_same_ecg_other_seed_other_ecg() -> None:
    spec = RhythmSpec(rate_bpm=90, pac_fraction=0.3, noise_mv=0.02, wander_mv=0.2, seed=5)
    first, truth = rhythm_ecg(spec)
    again, truth_again = rhythm_ecg(spec)
    other, _ = rhythm_ecg(RhythmSpec(rate_bpm=90, pac_fraction=0.3, seed=6))
    assert np.array_equal(first.signal, again.signal)
    assert truth == truth_again
    assert not np.array_equal(first.signal[:, :2000], other.signal[:, :2000])


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.4])
def test_premature_atrial_beats_come_early_and_reset_the_sinus_node(fraction: float) -> None:
    """The premature beats' share is what was asked; each comes at 55-72 % of the sinus
    cycle and the pause after it is shorter than compensatory (the node was reset)."""
    cycle = 60000.0 / 75
    _, truth = rhythm_ecg(RhythmSpec(rate_bpm=75, pac_fraction=fraction, seed=11))
    kinds, rr = truth.beats, _rr(truth.qrs_onsets_ms)
    assert abs(truth.count("A") / len(kinds) - fraction) <= 0.1
    assert truth.findings >= {"PAC"} and truth.rhythm == "SR"
    for i, kind in enumerate(kinds):
        if kind == "A":
            assert 0.5 * cycle < rr[i - 1] < 0.75 * cycle
            if i + 1 < len(kinds):
                assert rr[i - 1] + rr[i] < 1.9 * cycle


def test_premature_ventricular_beats_have_a_compensatory_pause() -> None:
    cycle = 60000.0 / 60
    _, truth = rhythm_ecg(RhythmSpec(rate_bpm=60, pvc_fraction=0.2, seed=3))
    rr = _rr(truth.qrs_onsets_ms)
    pvcs = [i for i, k in enumerate(truth.beats) if k == "V" and 0 < i < len(truth.beats) - 1]
    assert pvcs
    for i in pvcs:
        assert rr[i - 1] + rr[i] == pytest.approx(2 * cycle, rel=0.04)


@pytest.mark.parametrize("pattern, every", [("bigeminy", 2), ("trigeminy", 3)])
def test_bigeminy_and_trigeminy(pattern: str, every: int) -> None:
    _, truth = rhythm_ecg(RhythmSpec(pattern=pattern, pattern_origin="ventricular", seed=2))
    kinds = list(truth.beats)
    assert all((k == "V") == (i % every == every - 1) for i, k in enumerate(kinds))
    assert ("BIGU" if every == 2 else "TRIGU") in truth.findings
    assert ectopic_run(kinds, every) >= 3


def test_random_premature_beats_in_a_bigeminal_run_are_a_bigeminy() -> None:
    assert ectopic_run(list("NANANANN"), 2) == 3
    assert ectopic_run(list("NANANNAN"), 2) == 2


@pytest.mark.parametrize("amplitude", [0.02, 0.2])
def test_atrial_fibrillation_is_irregular_with_fibrillatory_waves(amplitude: float) -> None:
    """RR varies by 10 % or more; the f waves, where no QRS-T lies, have the size asked."""
    spec = RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=100, f_wave_mv=amplitude, seed=4)
    ecg, truth = rhythm_ecg(spec)
    rr = _rr(truth.qrs_onsets_ms)
    assert truth.rhythm == "AFIB" and set(truth.beats) == {"N"}
    assert rr.std() / rr.mean() > 0.1
    quiet, _ = rhythm_ecg(
        RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=100, f_wave_mv=0.0, seed=4)
    )
    f_waves = ecg.signal[5] - quiet.signal[5]  # aVF
    assert 0.5 * amplitude < np.abs(f_waves).max() < 2.5 * amplitude


@pytest.mark.parametrize("conduction", [2, 3, 4])
def test_flutter_conducts_every_nth_wave(conduction: int) -> None:
    _, truth = rhythm_ecg(
        RhythmSpec(rhythm="atrial_flutter", rate_bpm=300, flutter_conduction=conduction)
    )
    assert np.allclose(_rr(truth.qrs_onsets_ms), conduction * 200.0)
    assert truth.rhythm == "AFLT"


def test_variable_flutter_conduction_is_a_multiple_of_the_flutter_cycle() -> None:
    _, truth = rhythm_ecg(
        RhythmSpec(rhythm="atrial_flutter", rate_bpm=250, flutter_conduction=0, seed=1)
    )
    ratios = _rr(truth.qrs_onsets_ms) / 240.0
    assert np.allclose(ratios, np.round(ratios)) and len(set(np.round(ratios))) > 1


def test_av_blocks() -> None:
    _, first = rhythm_ecg(RhythmSpec(av_block="first"))
    assert "1AVB" in first.findings and len(first.beats) >= 10
    _, mobitz = rhythm_ecg(RhythmSpec(rate_bpm=80, av_block="mobitz2"))
    # Every fourth P wave is not conducted: a pause of two cycles.
    assert np.isclose(_rr(mobitz.qrs_onsets_ms).max(), 1500, rtol=0.05)
    _, third = rhythm_ecg(RhythmSpec(rate_bpm=80, av_block="third", seed=2))
    escape = 60000.0 / np.mean(_rr(third.qrs_onsets_ms))
    assert set(third.beats) == {"E"} and 34 <= escape <= 51 and "3AVB" in third.findings


@pytest.mark.parametrize("ratio", [3, 4, 5])
def test_mobitz_ratios_drop_one_p_wave_per_group(ratio: int) -> None:
    """Mobitz II at n:n-1 conducts n-1 of every n P waves: each pause is two sinus
    cycles; a Wenckebach's groups are as long, its RRs shortening within the group."""
    cycle = 60000.0 / 75
    _, mobitz2 = rhythm_ecg(RhythmSpec(rate_bpm=75, av_block="mobitz2", av_ratio=ratio))
    rr = _rr(mobitz2.qrs_onsets_ms)
    pauses = np.flatnonzero(rr > 1.5 * cycle)
    assert np.allclose(rr[pauses], 2 * cycle, rtol=0.05)
    assert set(np.diff(pauses)) == {ratio - 1}
    _, mobitz1 = rhythm_ecg(RhythmSpec(rate_bpm=75, av_block="mobitz1", av_ratio=ratio))
    rr = _rr(mobitz1.qrs_onsets_ms)
    assert set(np.diff(np.flatnonzero(rr > 1.5 * cycle))) == {ratio - 1}
    assert "2AVB" in mobitz1.findings and "2AVB" in mobitz2.findings


def test_two_to_one_block_and_ventricular_escape() -> None:
    _, block = rhythm_ecg(RhythmSpec(rate_bpm=90, av_block="two_to_one"))
    assert np.allclose(_rr(block.qrs_onsets_ms), 2 * 60000.0 / 90, rtol=0.05)
    assert "2AVB" in block.findings and block.rhythm == "SR"
    _, third = rhythm_ecg(RhythmSpec(rate_bpm=80, av_block="third", escape="ventricular", seed=2))
    escape = 60000.0 / np.mean(_rr(third.qrs_onsets_ms))
    assert set(third.beats) == {"E"} and 19 <= escape <= 41 and "3AVB" in third.findings


def test_a_paced_drawings_truth_codes_what_its_atria_do() -> None:
    """Beside PACE, the atrial rhythm drawn, as PTB-XL codes it: the sinus rate's code
    where the sinus node drives the atria, AFIB where they fibrillate, none where the
    pacemaker drives them (so a sinus rhythm named beside VVI pacing is scored right)."""
    from model.rhythm_paced import PacedSpec, atrial_rhythm_drawn

    def drawn(mode: str, sinus: float) -> frozenset[str]:
        return atrial_rhythm_drawn(PacedSpec(mode=mode, lower_rate_bpm=70.0, sinus_rate_bpm=sinus))

    assert drawn("VVI", 105.0) == {"STACH"}
    assert drawn("VVI", 45.0) == {"SBRAD"}
    assert drawn("DDD", 90.0) == {"SR"}
    assert drawn("DDD", 55.0) == frozenset()
    assert drawn("AAI", 90.0) == frozenset()
    assert drawn("VVI_AF", 90.0) == {"AFIB"}
    assert drawn("VVI_SINUS", 40.0) == {"SR"}
