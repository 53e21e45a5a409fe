"""Make our clean renders look like real printouts, photos and scans, reproducibly from a seed.

Two levels. Before rendering, on the signal: white noise and baseline wander (what
a poor electrode contact or breathing does). After rendering, on the page image:
other paper and grid colours or no grid at all, creases and shadows (the paper), a
tilted or perspective-skewed page (the scanner or camera), blur, sensor noise and
JPEG compression (the optics and the file). The page layout (3x4+1, 6x2, 12x1) is
chosen here and passed to the renderer.

Every random choice is drawn once into an `AugmentParams` from one seed and stored
with the sample, so an image can be rebuilt from its JSONL line. The image steps are
plain numpy and Pillow; no augmentation library models ECG paper (recolouring the
grid needs the paper/grid/trace unmixing below), and the rest is a few lines each.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image, ImageFilter
from pydantic import BaseModel, ConfigDict, Field

from model.ecg import Ecg
from model.render import DEFAULT_LAYOUT
from model.render import LAYOUTS as RENDER_LAYOUTS

LAYOUTS: tuple[str, ...] = tuple(RENDER_LAYOUTS)

# Printed ECGs: white, cream or tinted paper; red, pink, orange, green, blue or grey
# grids; black, dark blue or grey traces. Each sample jitters its pick a little.
PAPER_COLOURS = (
    (255, 255, 255),
    (250, 245, 228),
    (242, 242, 236),
    (255, 242, 242),
    (246, 250, 240),
)
GRID_COLOURS = (
    (230, 80, 80),
    (240, 150, 160),
    (240, 160, 90),
    (110, 190, 120),
    (120, 150, 220),
    (170, 170, 170),
    (120, 120, 120),
)
TRACE_COLOURS = ((0, 0, 0), (20, 20, 80), (45, 45, 45))
COLOUR_JITTER = 8

# A colour is "coloured" (grid, not paper or ink) when its channels spread by more
# than CHROMA_MIN; used to find the render's own grid colour.
CHROMA_MIN = 24
GRID_MIN_SHARE = 0.002
MAX_GRID_ALPHA = 2.0
WANDER_HZ = (0.05, 0.5)
# zlib level 3: noisy pages encode twice as fast as at the default 6 for 4 % more bytes.
PNG_COMPRESS_LEVEL = 3


class Knob(BaseModel):
    """How often an augmentation is applied and its largest strength."""

    model_config = ConfigDict(extra="forbid")

    p: float = Field(0.0, ge=0.0, le=1.0)
    max: float = Field(0.0, ge=0.0)


class AugmentConfig(BaseModel):
    """`augment:` in config/training/dataset.yaml; units are in the field descriptions."""

    model_config = ConfigDict(extra="forbid")

    splits: list[str] = Field(default_factory=lambda: ["train"])
    clean_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of records whose copy 0 is the clean 3x4+1 page the gateway "
        "renders (stage 1 reads copy 0 only); balancing copies are always augmented",
    )
    layouts: dict[str, float] = Field(
        default_factory=lambda: {"3x4+1": 0.6, "6x2": 0.2, "12x1": 0.2},
        description="layout -> relative weight",
    )
    signal_noise: Knob = Field(default_factory=Knob, description="max: white noise SD in mV")
    baseline_wander: Knob = Field(default_factory=Knob, description="max: amplitude in mV")
    paper_colour: Knob = Field(default_factory=Knob, description="p only")
    gridless: Knob = Field(default_factory=Knob, description="p only")
    crease: Knob = Field(default_factory=Knob, description="max: darkening 0-1 in the fold")
    shadow: Knob = Field(default_factory=Knob, description="max: darkening 0-1 at the far edge")
    perspective: Knob = Field(default_factory=Knob, description="max: corner shift, share of side")
    rotation: Knob = Field(default_factory=Knob, description="max: degrees either way")
    blur: Knob = Field(default_factory=Knob, description="max: Gaussian radius in pixels")
    scanner_noise: Knob = Field(default_factory=Knob, description="max: noise SD in grey levels")
    jpeg: Knob = Field(default_factory=Knob, description="max: quality lost below 95 (e.g. 70)")

    def model_post_init(self, _context: object) -> None:
        unknown = sorted(set(self.layouts) - set(LAYOUTS))
        if unknown:
            raise ValueError(f"unknown layouts {unknown}; choose from {list(LAYOUTS)}")
        if not any(weight > 0 for weight in self.layouts.values()):
            raise ValueError("layouts: at least one layout needs a positive weight")


@dataclass(frozen=True)
class AugmentParams:
    """Everything random about one sample; JSON-serialisable via `as_dict`."""

    seed: int
    layout: str = DEFAULT_LAYOUT
    signal_noise_mv: float = 0.0
    wander_mv: float = 0.0
    wander_hz: float = 0.0
    paper_rgb: tuple[int, int, int] | None = None
    grid_rgb: tuple[int, int, int] | None = None
    trace_rgb: tuple[int, int, int] | None = None
    gridless: bool = False
    crease: tuple[float, float, float, float] | None = None  # x, y (share), angle deg, depth
    shadow: tuple[float, float] | None = None  # direction deg, depth
    perspective: tuple[float, ...] | None = None  # 8 corner shifts, share of width/height
    rotation_deg: float = 0.0
    blur_radius: float = 0.0
    scanner_noise: float = 0.0
    jpeg_quality: int | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> AugmentParams:
        tuples = ("paper_rgb", "grid_rgb", "trace_rgb", "crease", "shadow", "perspective")
        fixed = {k: tuple(v) if k in tuples and v is not None else v for k, v in data.items()}
        return cls(**fixed)


def sample_seed(seed: int, *keys: int) -> int:
    """A per-sample seed that depends only on the run seed and the sample, not on order."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def is_clean_copy(config: AugmentConfig, seed: int, ecg_id: int, copy: int) -> bool:
    """Copy 0 of a `clean_share` of the records, drawn from the run seed and the record:
    the page the gateway itself renders from a waveform, which stage 1 must see."""
    if copy != 0:
        return False
    return bool(np.random.default_rng([seed, ecg_id, 7]).random() < config.clean_share)


def sample_params(config: AugmentConfig, seed: int) -> AugmentParams:
    """Draw every augmentation decision; each knob consumes the same draws, used or not."""
    rng = np.random.default_rng(seed)
    names = sorted(config.layouts)
    weights = np.array([config.layouts[n] for n in names], dtype=float)
    layout = names[int(rng.choice(len(names), p=weights / weights.sum()))]

    def strength(knob: Knob) -> float:
        on, amount = rng.random() < knob.p, rng.uniform(0.25, 1.0) * knob.max
        return float(amount) if on else 0.0

    noise, wander = strength(config.signal_noise), strength(config.baseline_wander)
    wander_hz = float(rng.uniform(*WANDER_HZ))
    recolour = rng.random() < config.paper_colour.p
    paper, grid, trace = (
        _jittered(rng, presets) for presets in (PAPER_COLOURS, GRID_COLOURS, TRACE_COLOURS)
    )
    gridless = bool(rng.random() < config.gridless.p)
    crease_depth, crease_at = strength(config.crease), rng.uniform(0.2, 0.8, size=2)
    crease_angle = float(rng.uniform(0.0, 180.0))
    shadow_depth, shadow_dir = strength(config.shadow), float(rng.uniform(0.0, 360.0))
    warp, corners = strength(config.perspective), rng.uniform(-1.0, 1.0, size=8)
    rotation = strength(config.rotation) * float(rng.choice((-1.0, 1.0))) or 0.0
    blur, scanner, jpeg_loss = (
        strength(config.blur),
        strength(config.scanner_noise),
        strength(config.jpeg),
    )
    return AugmentParams(
        seed=seed,
        layout=layout,
        signal_noise_mv=noise,
        wander_mv=wander,
        wander_hz=wander_hz if wander else 0.0,
        paper_rgb=paper if recolour else None,
        grid_rgb=grid if recolour else None,
        trace_rgb=trace if recolour else None,
        gridless=gridless,
        crease=(float(crease_at[0]), float(crease_at[1]), crease_angle, crease_depth)
        if crease_depth
        else None,
        shadow=(shadow_dir, shadow_depth) if shadow_depth else None,
        perspective=tuple(float(c) * warp for c in corners) if warp else None,
        rotation_deg=rotation,
        blur_radius=blur,
        scanner_noise=scanner,
        jpeg_quality=round(95 - jpeg_loss) if jpeg_loss else None,
    )


def _jittered(
    rng: np.random.Generator, presets: tuple[tuple[int, int, int], ...]
) -> tuple[int, int, int]:
    base = np.array(presets[int(rng.integers(len(presets)))])
    jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
    r, g, b = (int(v) for v in np.clip(base + jitter, 0, 255))
    return (r, g, b)


# ------------------------------------------------------------------ signal ----


def augment_signal(ecg: Ecg, params: AugmentParams) -> Ecg:
    """White noise and respiratory baseline wander, each lead with its own amplitude."""
    if not (params.signal_noise_mv or params.wander_mv):
        return ecg
    rng = np.random.default_rng(params.seed)
    n_leads, n = ecg.signal.shape
    signal = ecg.signal.astype(np.float64)
    if params.signal_noise_mv:
        signal = signal + rng.normal(0.0, params.signal_noise_mv, size=(n_leads, n))
    if params.wander_mv:
        t = np.arange(n) / ecg.sampling_rate
        amplitude = params.wander_mv * rng.uniform(0.5, 1.0, size=(n_leads, 1))
        phase = rng.uniform(0.0, 2 * np.pi, size=(n_leads, 1))
        signal = signal + amplitude * np.sin(2 * np.pi * params.wander_hz * t + phase)
    return replace(ecg, signal=signal.astype(np.float32))


# ------------------------------------------------------------------- image ----


def augment_image(image: Image.Image, params: AugmentParams) -> Image.Image:
    """Paper, then page placement, then optics: the order a scan happens in.

    JPEG compression, the last step, happens when the page is saved (`encode_page`).
    """
    image = image.convert("RGB")
    if params.paper_rgb is not None or params.gridless:
        image = recolour(
            image, params.paper_rgb, params.grid_rgb, params.trace_rgb, params.gridless
        )
    paper = page_colour(image)
    if params.crease:
        image = add_crease(image, *params.crease)
    if params.shadow:
        image = add_shadow(image, *params.shadow)
    if params.perspective:
        image = warp_perspective(image, params.perspective, paper)
    if params.rotation_deg:
        image = image.rotate(
            params.rotation_deg, resample=Image.Resampling.BICUBIC, fillcolor=paper
        )
    if params.blur_radius:
        image = image.filter(ImageFilter.GaussianBlur(params.blur_radius))
    if params.scanner_noise:
        image = add_scanner_noise(image, params.scanner_noise, params.seed)
    return image


@dataclass(frozen=True)
class _Colours:
    """The page as a table of distinct colours: ECG renders have few, so colour work is
    done once per colour instead of once per pixel."""

    table: np.ndarray  # (n, 3) distinct colours
    counts: np.ndarray  # pixels of each colour
    index: np.ndarray  # for every pixel, the row of its colour
    shape: tuple[int, ...]


def _colours(image: Image.Image) -> _Colours:
    pixels = np.asarray(image.convert("RGB"))
    rgb = pixels.reshape(-1, 3).astype(np.int64)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    values, index, counts = np.unique(packed, return_inverse=True, return_counts=True)
    table = np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], axis=1)
    return _Colours(table, counts, index, pixels.shape)


def _as_rgb(colour: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in colour)
    return (r, g, b)


def _paper(colours: _Colours) -> np.ndarray:
    return colours.table[np.argmax(colours.counts)]


def _grid(colours: _Colours) -> np.ndarray | None:
    chroma = colours.table.max(axis=1) - colours.table.min(axis=1)
    common = (colours.counts >= GRID_MIN_SHARE * colours.counts.sum()) & (chroma > CHROMA_MIN)
    if not common.any():
        return None
    candidates = np.flatnonzero(common)
    return colours.table[candidates[np.argmax(chroma[candidates])]]


def page_colour(image: Image.Image) -> tuple[int, int, int]:
    """The most common colour: the paper, on any ECG page."""
    return _as_rgb(_paper(_colours(image)))


def grid_colour(image: Image.Image) -> tuple[int, int, int] | None:
    """The most saturated of the page's common colours: the major grid lines.

    Common means at least GRID_MIN_SHARE of the pixels, which anti-aliasing blends
    never reach. Minor lines are a lighter tint of the major ones, so with the
    saturated end as the grid colour they unmix as a partial grid (alpha < 1).
    """
    grid = _grid(_colours(image))
    return None if grid is None else _as_rgb(grid)


def recolour(
    image: Image.Image,
    paper: tuple[int, int, int] | None,
    grid: tuple[int, int, int] | None,
    trace: tuple[int, int, int] | None,
    gridless: bool,
) -> Image.Image:
    """Repaint paper, grid and trace (None keeps a colour), or drop the grid.

    Each colour is unmixed as paper + a_g (grid - paper) + a_t (ink - paper) by least
    squares with the page's own colours (ink: black), then mixed again with the new
    ones, so anti-aliased edges and grid/trace crossings stay smooth.
    """
    colours = _colours(image)
    old_paper = _paper(colours).astype(np.float64)
    old_grid = _grid(colours)
    old_ink = np.zeros(3)
    grid_direction = (old_grid - old_paper) if old_grid is not None else np.zeros(3)
    basis = np.stack([grid_direction, old_ink - old_paper], axis=1)
    alphas = (colours.table - old_paper) @ np.linalg.pinv(basis).T
    alpha_ink = np.clip(alphas[:, 1], 0.0, 1.0)
    alpha_grid = np.clip(alphas[:, 0], 0.0, MAX_GRID_ALPHA) * (1.0 - alpha_ink)
    if gridless or old_grid is None:
        alpha_grid[:] = 0.0
    new_paper = np.array(paper if paper is not None else old_paper, dtype=np.float64)
    new_grid = np.array(
        grid if grid is not None else (old_grid if old_grid is not None else old_paper),
        dtype=np.float64,
    )
    new_ink = np.array(trace if trace is not None else old_ink, dtype=np.float64)
    mixed = (
        new_paper
        + alpha_grid[:, None] * (new_grid - new_paper)
        + alpha_ink[:, None] * (new_ink - new_paper)
    )
    table = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return Image.fromarray(table[colours.index].reshape(colours.shape), "RGB")


def _coordinates(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates as shares of the page (x across, y down), broadcastable to (h, w)."""
    w, h = image.size
    x = (np.arange(w, dtype=np.float32) / w)[None, :]
    y = (np.arange(h, dtype=np.float32) / h)[:, None]
    return x, y


def _darken(image: Image.Image, factor: np.ndarray) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32) * np.clip(factor, 0.0, 1.5)[..., None]
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def add_crease(
    image: Image.Image, x: float, y: float, angle_deg: float, depth: float
) -> Image.Image:
    """A fold through (x, y): a dark valley with a lit ridge beside it."""
    xx, yy = _coordinates(image)
    theta = math.radians(angle_deg)
    distance = (xx - x) * -math.sin(theta) + (yy - y) * math.cos(theta)
    width = 0.006
    valley = depth * np.exp(-((distance / width) ** 2))
    ridge = 0.3 * depth * np.exp(-(((distance - 2.5 * width) / width) ** 2))
    return _darken(image, 1.0 - valley + ridge)


def add_shadow(image: Image.Image, direction_deg: float, depth: float) -> Image.Image:
    """Light falling off towards one side of the page, as under a lid or a hand."""
    xx, yy = _coordinates(image)
    theta = math.radians(direction_deg)
    along = (xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta)
    span = 0.5 * (abs(math.cos(theta)) + abs(math.sin(theta)))
    t = np.clip((along + span) / (2 * span), 0.0, 1.0)
    return _darken(image, 1.0 - depth * t**2)


def perspective_coefficients(
    source: list[tuple[float, float]], target: list[tuple[float, float]]
) -> tuple[float, ...]:
    """Pillow's 8 PERSPECTIVE coefficients mapping each target point back to its source."""
    rows, rhs = [], []
    for (sx, sy), (tx, ty) in zip(source, target):
        rows.append([tx, ty, 1, 0, 0, 0, -sx * tx, -sx * ty])
        rows.append([0, 0, 0, tx, ty, 1, -sy * tx, -sy * ty])
        rhs.extend([sx, sy])
    return tuple(float(c) for c in np.linalg.solve(np.array(rows), np.array(rhs)))


def warp_perspective(
    image: Image.Image, shifts: tuple[float, ...], fill: tuple[int, int, int]
) -> Image.Image:
    """Move the page's four corners inwards or outwards by the given shares of its size."""
    w, h = image.size
    corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    moved = [
        (cx + shifts[2 * i] * w, cy + shifts[2 * i + 1] * h) for i, (cx, cy) in enumerate(corners)
    ]
    coefficients = perspective_coefficients(corners, moved)
    return image.transform(
        image.size,
        Image.Transform.PERSPECTIVE,
        coefficients,
        resample=Image.Resampling.BICUBIC,
        fillcolor=fill,
    )


def add_scanner_noise(image: Image.Image, sigma: float, seed: int) -> Image.Image:
    """Sensor noise: Gaussian per pixel, partly shared by the channels as in real sensors."""
    rng = np.random.default_rng([seed, 1])
    pixels = np.asarray(image, dtype=np.float32)
    luma = rng.standard_normal(pixels.shape[:2] + (1,), dtype=np.float32) * sigma
    chroma = rng.standard_normal(pixels.shape, dtype=np.float32) * (sigma * 0.3)
    noisy = np.clip(np.rint(pixels + luma + chroma), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, "RGB")


def encode_page(image: Image.Image, params: AugmentParams | None) -> tuple[bytes, str]:
    """(file bytes, suffix): JPEG at the drawn quality, else lossless PNG; both byte-stable.

    Saving the JPEG itself, rather than a PNG of its decoded pixels, gives the same
    pixels in a tenth of the space.
    """
    buffer = io.BytesIO()
    if params is not None and params.jpeg_quality is not None:
        image.save(buffer, format="JPEG", quality=params.jpeg_quality)
        return buffer.getvalue(), ".jpg"
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue(), ".png"
