"""Augmentation on a real rendered PTB-XL page: reproducible, and each step does what it says."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import laplace

import model
from training.augment import (
    CHROMA_MIN,
    LAYOUTS,
    AugmentConfig,
    AugmentParams,
    Knob,
    add_crease,
    add_scanner_noise,
    add_shadow,
    augment_image,
    augment_signal,
    encode_page,
    grid_colour,
    page_colour,
    recolour,
    sample_params,
    warp_perspective,
)
from training.dataset import render_page

DPI = 100
EVERYTHING = AugmentConfig(
    **{
        name: Knob(p=1.0, max=limit)
        for name, limit in {
            "signal_noise": 0.03,
            "baseline_wander": 0.3,
            "paper_colour": 0.0,
            "gridless": 0.0,
            "crease": 0.3,
            "shadow": 0.4,
            "perspective": 0.04,
            "rotation": 3.0,
            "blur": 1.5,
            "scanner_noise": 10.0,
            "jpeg": 60.0,
        }.items()
    }
)


@pytest.fixture(scope="module")
def ecg(shared_data: Path):
    return model.load(shared_data / "ptbxl" / "records500" / "00000" / "00008_hr")


@pytest.fixture(scope="module")
def page(ecg) -> Image.Image:
    return Image.open(io.BytesIO(model.render_png(ecg, dpi=DPI, header=False))).convert("RGB")


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64)


def _correlation(a: Image.Image, b: Image.Image) -> float:
    return float(np.corrcoef(_grey(a).ravel(), _grey(b).ravel())[0, 1])


def _chroma(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.int16)
    return pixels.max(axis=2) - pixels.min(axis=2)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(ecg) -> None:
    params = sample_params(EVERYTHING, seed=1234)
    assert params == sample_params(EVERYTHING, seed=1234)
    assert AugmentParams.from_dict(params.as_dict()) == params
    first = render_page(ecg, params, DPI)
    assert first == render_page(ecg, AugmentParams.from_dict(params.as_dict()), DPI)
    assert first != render_page(ecg, sample_params(EVERYTHING, seed=1235), DPI)


def test_probability_zero_changes_nothing_and_one_sets_every_knob() -> None:
    nothing = sample_params(AugmentConfig(), seed=5)
    assert nothing == AugmentParams(seed=5, layout=nothing.layout)
    config = EVERYTHING.model_copy(update={"paper_colour": Knob(p=1.0), "gridless": Knob(p=1.0)})
    everything = sample_params(config, seed=5)
    assert everything.signal_noise_mv > 0 and everything.wander_mv > 0
    assert everything.paper_rgb and everything.grid_rgb and everything.gridless
    assert everything.crease and everything.shadow and everything.perspective
    assert everything.rotation_deg != 0 and everything.blur_radius > 0
    assert everything.scanner_noise > 0 and 35 <= everything.jpeg_quality < 95


def test_layouts_are_drawn_by_weight() -> None:
    config = AugmentConfig(layouts={"6x2": 1.0, "12x1": 3.0})
    drawn = [sample_params(config, seed).layout for seed in range(400)]
    assert set(drawn) == {"6x2", "12x1"}
    assert 0.65 < drawn.count("12x1") / len(drawn) < 0.85
    with pytest.raises(ValueError, match="unknown layouts"):
        AugmentConfig(layouts={"4x3": 1.0})


def test_each_layout_renders_its_own_page(ecg) -> None:
    pages = {
        layout: render_page(ecg, AugmentParams(seed=0, layout=layout), DPI) for layout in LAYOUTS
    }
    assert len(set(pages.values())) == len(LAYOUTS)
    for layout, png in pages.items():
        assert png == render_page(ecg, AugmentParams(seed=0, layout=layout), DPI)


def test_signal_noise_and_baseline_wander(ecg) -> None:
    noisy = augment_signal(ecg, AugmentParams(seed=1, signal_noise_mv=0.05))
    added = noisy.signal - ecg.signal
    assert added.std() == pytest.approx(0.05, rel=0.05)
    wandering = augment_signal(ecg, AugmentParams(seed=1, wander_mv=0.4, wander_hz=0.3))
    drift = wandering.signal - ecg.signal
    spectrum = np.abs(np.fft.rfft(drift, axis=1))
    freqs = np.fft.rfftfreq(ecg.n_samples, 1.0 / ecg.sampling_rate)
    assert np.all(freqs[spectrum.argmax(axis=1)] == pytest.approx(0.3, abs=0.11))
    assert 0.2 <= np.abs(drift).max() <= 0.41
    assert augment_signal(ecg, AugmentParams(seed=1)) is ecg


def test_rotation_moves_content_and_rotating_back_restores_it(page) -> None:
    paper = page_colour(page)
    turned = augment_image(page, AugmentParams(seed=0, rotation_deg=2.5))
    back = turned.rotate(-2.5, resample=Image.Resampling.BICUBIC, fillcolor=paper)
    assert _correlation(turned, page) < 0.8
    assert _correlation(back, page) > _correlation(turned, page) + 0.1


def test_blur_reduces_high_frequency_energy(page) -> None:
    blurred = augment_image(page, AugmentParams(seed=0, blur_radius=1.5))
    assert np.mean(laplace(_grey(blurred)) ** 2) < 0.5 * np.mean(laplace(_grey(page)) ** 2)


def test_gridless_keeps_the_trace_and_drops_every_grid_pixel(page) -> None:
    assert (_chroma(page) > CHROMA_MIN).mean() > 0.05, "the render has a coloured grid"
    plain = augment_image(page, AugmentParams(seed=0, gridless=True))
    assert (_chroma(plain) > CHROMA_MIN).sum() == 0
    ink_before, ink_after = (_grey(page) < 90).sum(), (_grey(plain) < 90).sum()
    assert ink_after == pytest.approx(ink_before, rel=0.1)


def test_recolouring_repaints_paper_grid_and_trace(page) -> None:
    old_grid = grid_colour(page)
    new_paper, new_grid, new_ink = (250, 245, 228), (110, 190, 120), (20, 20, 80)
    painted = recolour(page, new_paper, new_grid, new_ink, gridless=False)
    assert page_colour(painted) == new_paper
    assert grid_colour(painted) == pytest.approx(new_grid, abs=6)
    pixels = _array(painted)
    was_grid = np.all(np.abs(_array(page) - np.array(old_grid)) <= 2, axis=2)
    assert np.abs(pixels[was_grid] - new_grid).max() <= 6
    darkest = pixels.reshape(-1, 3)[_grey(painted).ravel().argmin()]
    assert darkest == pytest.approx(new_ink, abs=10)


def test_crease_darkens_along_its_line(page) -> None:
    creased = add_crease(page, x=0.5, y=0.5, angle_deg=0.0, depth=0.3)
    diff = _grey(page) - _grey(creased)
    middle = slice(diff.shape[0] // 2 - 1, diff.shape[0] // 2 + 2)
    assert diff[middle].mean() > 0.25 * _grey(page)[middle].mean()
    assert np.abs(diff[: diff.shape[0] // 4]).max() < 1.0


def test_shadow_darkens_towards_one_edge(page) -> None:
    shaded = add_shadow(page, direction_deg=0.0, depth=0.4)
    ratio = _grey(shaded).mean(axis=0) / np.maximum(_grey(page).mean(axis=0), 1.0)
    assert ratio[:5].mean() > 0.99
    assert ratio[-5:].mean() == pytest.approx(0.6, abs=0.03)


def test_perspective_moves_corners_and_fills_with_paper(page) -> None:
    paper = page_colour(page)
    shifts = (0.04, 0.04, -0.04, 0.04, -0.04, -0.04, 0.04, -0.04)
    warped = warp_perspective(page, shifts, paper)
    corner = _array(warped)[:5, :5]
    assert np.all(corner == paper)
    assert _correlation(warped, page) < 0.8


def test_scanner_noise_adds_about_sigma_on_paper(page) -> None:
    noisy = add_scanner_noise(page, sigma=8.0, seed=3)
    on_paper = np.all(_array(page) == page_colour(page), axis=2)
    # White paper clips at 255, which halves the spread there; never more than sigma.
    assert 0.4 * 8.0 < _grey(noisy)[on_paper].std() < 1.2 * 8.0
    assert add_scanner_noise(page, 8.0, 3).tobytes() == noisy.tobytes()
    assert add_scanner_noise(page, 8.0, 4).tobytes() != noisy.tobytes()


def test_jpeg_lower_quality_loses_more_and_is_saved_as_jpeg(page) -> None:
    def decoded(quality: int) -> np.ndarray:
        data, suffix = encode_page(page, AugmentParams(seed=0, jpeg_quality=quality))
        assert suffix == ".jpg"
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)

    error_fine = np.abs(decoded(90) - _array(page)).mean()
    error_coarse = np.abs(decoded(30) - _array(page)).mean()
    assert 0 < error_fine < error_coarse
    lossless, suffix = encode_page(page, AugmentParams(seed=0))
    assert suffix == ".png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(lossless))), np.asarray(page))


def test_full_chain_on_the_page_changes_it_but_keeps_its_size(page) -> None:
    params = replace(sample_params(EVERYTHING, seed=9), gridless=False)
    out = augment_image(page, params)
    assert out.size == page.size and out.mode == "RGB"
    assert _correlation(out, page) < 0.95
