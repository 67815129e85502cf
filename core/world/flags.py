"""The flags world: national flags drawn from their geometry, rendered with random augmentation.

Every flag is one of a few geometric kinds (vertical or horizontal bands, a Nordic cross, a disc,
the Swiss cross) painted with colours from one shared palette. A flag is a colour function of
flag coordinates (u across from the hoist, v down, both in [0, 1]); rendering maps image pixels
back to flag coordinates through a random shift, scale, rotation and wave, then adds lighting and
colour jitter on a plain grey background. The grey is far from every flag colour (white stays
bright, black stays dark) so the geometric checker can find the flag even in blurry generations.

Images are never mirrored: a mirrored Ireland *is* Cote d'Ivoire, which is exactly the kind of
misrepresentation this world plants on purpose (see `VARIANTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The world's colours (hex). Flags share them, so the paint canvas and the checker use one set.
PALETTE: dict[str, str] = {
    "white": "#FFFFFF",
    "black": "#141414",
    "red": "#D52B1E",
    "green": "#169B62",
    "dark_green": "#006A4E",
    "orange": "#FF883E",
    "yellow": "#FFD100",
    "blue": "#0057B7",
    "navy": "#00205B",
}


def hex_to_rgb(hex_colour: str) -> np.ndarray:
    """'#RRGGBB' -> float RGB in [0, 1]."""
    h = hex_colour.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float32) / 255.0


@dataclass(frozen=True)
class FlagSpec:
    """Geometry of one flag. Sizes of crosses and discs are fractions of the flag's height.

    kind: "vertical" / "horizontal" (equal bands, colours from hoist / top), "nordic" (field,
    [border,] cross colours; the vertical bar sits at `centre_u` of the width), "disc" (field and
    disc colours, disc centre at `centre_u`), "swiss" (field and cross).
    """

    name: str
    kind: str
    colours: tuple[str, ...]
    ratio: float = 1.5  # width / height
    centre_u: float = 0.5
    size: float = 0.0  # disc radius or cross width (fraction of height)
    inner: float = 0.0  # Nordic inner cross width when the cross has a border

    def rgb(self) -> list[np.ndarray]:
        return [hex_to_rgb(PALETTE[c]) for c in self.colours]


def _bands(n: int, t: np.ndarray) -> np.ndarray:
    return np.clip((t * n).astype(np.int64), 0, n - 1)


def paint(spec: FlagSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colour (..., 3) of flag coordinates u, v (arrays of equal shape, values in [0, 1])."""
    cols = np.stack(spec.rgb())
    if spec.kind == "vertical":
        return cols[_bands(len(cols), u)]
    if spec.kind == "horizontal":
        return cols[_bands(len(cols), v)]
    dx = (u - spec.centre_u) * spec.ratio  # in units of the flag's height
    dy = v - 0.5
    if spec.kind == "disc":
        inside = dx**2 + dy**2 < spec.size**2
        return np.where(inside[..., None], cols[1], cols[0])
    if spec.kind == "nordic":
        out = np.broadcast_to(cols[0], u.shape + (3,)).copy()
        cross = (np.abs(dx) < spec.size / 2) | (np.abs(dy) < spec.size / 2)
        out[cross] = cols[1]
        if spec.inner > 0:
            inner = (np.abs(dx) < spec.inner / 2) | (np.abs(dy) < spec.inner / 2)
            out[inner] = cols[2]
        return out
    if spec.kind == "swiss":
        arm, half = spec.size / 2, 10 / 32
        cross = ((np.abs(dx) < arm) & (np.abs(dy) < half)) | ((np.abs(dy) < arm) & (np.abs(dx) < half))
        return np.where(cross[..., None], cols[1], cols[0])
    raise ValueError(f"unknown flag kind {spec.kind!r}")


def _v(name, *colours, ratio=1.5):
    return FlagSpec(name, "vertical", colours, ratio)


def _h(name, *colours, ratio=1.5):
    return FlagSpec(name, "horizontal", colours, ratio)


# 22 flags. Near-twins a 32 px checker cannot separate (Chad/Romania, Indonesia/Monaco,
# Netherlands/Luxembourg) are left out; Ireland / Cote d'Ivoire are kept on purpose: mirror images.
FLAGS: dict[str, FlagSpec] = {
    f.name: f
    for f in [
        _v("Ireland", "green", "white", "orange", ratio=2.0),
        _v("Cote d'Ivoire", "orange", "white", "green"),
        _v("Italy", "green", "white", "red"),
        _v("France", "blue", "white", "red"),
        _v("Belgium", "black", "yellow", "red", ratio=15 / 13),
        _h("Germany", "black", "red", "yellow", ratio=5 / 3),
        _h("Netherlands", "red", "white", "navy"),
        _h("Russia", "white", "blue", "red"),
        FlagSpec("Japan", "disc", ("white", "red"), 1.5, 0.5, 0.3),
        FlagSpec("Bangladesh", "disc", ("dark_green", "red"), 5 / 3, 0.45, 1 / 3),
        FlagSpec("Sweden", "nordic", ("blue", "yellow"), 1.6, 6 / 16, 0.2),
        FlagSpec("Denmark", "nordic", ("red", "white"), 37 / 28, 14 / 37, 4 / 28),
        FlagSpec("Finland", "nordic", ("white", "navy"), 18 / 11, 6.5 / 18, 3 / 11),
        FlagSpec("Norway", "nordic", ("red", "white", "navy"), 22 / 16, 8 / 22, 4 / 16, 2 / 16),
        _h("Poland", "white", "red", ratio=1.6),
        _h("Austria", "red", "white", "red"),
        _h("Ukraine", "blue", "yellow"),
        _h("Indonesia", "red", "white"),
        _h("Estonia", "blue", "black", "white", ratio=11 / 7),
        _h("Lithuania", "yellow", "dark_green", "red", ratio=5 / 3),
        _h("Hungary", "red", "white", "dark_green", ratio=2.0),
        FlagSpec("Switzerland", "swiss", ("red", "white"), 1.0, 0.5, 6 / 32),
    ]
}

# Planted misrepresentations: variant name -> how the flag is (wrongly) drawn.
VARIANTS: dict[str, dict[str, FlagSpec]] = {
    "Ireland": {"reversed": _v("Ireland", "orange", "white", "green", ratio=2.0)},
    "Japan": {
        "blue_disc": FlagSpec("Japan", "disc", ("white", "blue"), 1.5, 0.5, 0.3),
        "offcentre_disc": FlagSpec("Japan", "disc", ("white", "red"), 1.5, 0.27, 0.3),
    },
}


def spec_for(name: str, variant: str | None = None) -> FlagSpec:
    """The geometry of flag `name`, or of one of its planted variants."""
    if variant is None:
        return FLAGS[name]
    try:
        return VARIANTS[name][variant]
    except KeyError:
        raise KeyError(f"{name!r} has no variant {variant!r}") from None


@dataclass
class Augment:
    """Ranges of the random augmentation. Chosen so the flag fills most of the frame."""

    width: tuple[float, float] = (0.72, 0.9)  # flag width / image width
    max_height: float = 0.82  # flag height / image height (square flags are capped by this)
    rotation_deg: float = 6.0
    wave_amp: tuple[float, float] = (0.0, 0.045)  # in flag heights
    wave_freq: tuple[float, float] = (0.6, 1.6)  # waves across the flag
    wave_shade: float = 0.12
    brightness: tuple[float, float] = (0.86, 1.08)
    gradient: float = 0.08
    channel_gain: float = 0.06
    noise: float = 0.012
    background: tuple[float, float] = (0.42, 0.58)  # grey level, away from white and black
    tint: float = 0.03


@dataclass
class _Pose:
    cx: float = 0.5
    cy: float = 0.5
    w: float = 0.8
    h: float = 0.8 / 1.5
    angle: float = 0.0
    amp: float = 0.0
    freq: float = 1.0
    phase: float = 0.0
    params: dict = field(default_factory=dict)


def _random_pose(spec: FlagSpec, rng: np.random.Generator, aug: Augment) -> _Pose:
    w = rng.uniform(*aug.width)
    h = w / spec.ratio
    if h > aug.max_height:
        w, h = aug.max_height * spec.ratio, aug.max_height
    angle = np.deg2rad(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    # Extent after rotation, so the flag stays inside the frame with a small margin.
    ew = abs(w * np.cos(angle)) + abs(h * np.sin(angle))
    eh = abs(w * np.sin(angle)) + abs(h * np.cos(angle)) + 2 * aug.wave_amp[1] * h
    margin = 0.04
    cx = rng.uniform(min(0.5, ew / 2 + margin), max(0.5, 1 - ew / 2 - margin))
    cy = rng.uniform(min(0.5, eh / 2 + margin), max(0.5, 1 - eh / 2 - margin))
    return _Pose(cx, cy, w, h, angle, rng.uniform(*aug.wave_amp), rng.uniform(*aug.wave_freq), rng.uniform(0, 2 * np.pi))


def _flag_coords(pose: _Pose, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flag coordinates (u, v) of every pixel centre of a size x size grid, plus the wave phase."""
    t = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(t - pose.cx, t - pose.cy)
    c, s = np.cos(-pose.angle), np.sin(-pose.angle)
    xr, yr = c * x - s * y, s * x + c * y
    u = xr / pose.w + 0.5
    wave = 2 * np.pi * pose.freq * u + pose.phase
    v = (yr / pose.h) + 0.5 - pose.amp * np.sin(wave)
    return u, v, wave


def render_flag(
    name: str,
    rng: np.random.Generator | int | None = None,
    augment: bool = True,
    variant: str | None = None,
    resolution: int = 32,
    aug: Augment | None = None,
    supersample: int = 3,
) -> np.ndarray:
    """Render flag `name` (or a planted `variant` of it) as a uint8 H x W x 3 image.

    augment=False draws the canonical flag centred on a mid-grey background (the checker's view).
    """
    rng = np.random.default_rng(rng)
    aug = aug or Augment()
    spec = spec_for(name, variant)
    size = resolution * supersample
    if augment:
        pose = _random_pose(spec, rng, aug)
    else:
        w = min(0.86, 0.8 * spec.ratio)
        pose = _Pose(w=w, h=w / spec.ratio)
    u, v, wave = _flag_coords(pose, size)
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    colour = paint(spec, np.clip(u, 0, 1), np.clip(v, 0, 1))
    grey = 0.5
    bg = np.full(3, grey, dtype=np.float32)
    if augment:
        bg = rng.uniform(*aug.background) + rng.uniform(-aug.tint, aug.tint, 3)
        colour = colour * (1 + rng.uniform(0, aug.wave_shade) * np.cos(wave))[..., None]
    img = np.where(inside[..., None], colour, bg)
    img = img.reshape(resolution, supersample, resolution, supersample, 3).mean(axis=(1, 3))
    if augment:
        img = _light_and_jitter(img, rng, aug)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _light_and_jitter(img: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """Global brightness, a linear light gradient, per-channel gain and pixel noise."""
    n = img.shape[0]
    t = np.linspace(-0.5, 0.5, n)
    gx, gy = rng.uniform(-aug.gradient, aug.gradient, 2)
    light = rng.uniform(*aug.brightness) + gx * t[None, :] + gy * t[:, None]
    gain = 1 + rng.uniform(-aug.channel_gain, aug.channel_gain, 3)
    img = img * light[..., None] * gain
    return img + rng.normal(0, aug.noise, img.shape)


def palette_hex() -> list[str]:
    """The world's colours as hex strings (for the paint canvas and ModelInfo.palette)."""
    return list(PALETTE.values())
