"""The miniature world's images: one shape per picture, drawn procedurally and seeded.

10 shape classes (the analogue of Imagenette's 10), 8 colours, 3 textures (the
analogue of artistic styles: plain, striped, dotted), at a random position, scale and
rotation on a random dark background. Shapes are drawn at 4x the output size and
box-filtered down, so edges are anti-aliased the same way at every size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross",
          "heart", "diamond", "crescent", "arrow", "ring")
COLOURS = {
    "red": (220, 40, 40), "orange": (245, 140, 20), "yellow": (240, 225, 40),
    "green": (40, 190, 60), "cyan": (40, 210, 220), "blue": (50, 80, 230),
    "purple": (150, 60, 210), "white": (235, 235, 235),
}
TEXTURES = ("plain", "striped", "dotted")
TEMPLATES = ("a {desc}", "an image of a {desc}", "a picture of a {desc}", "a photo of a {desc}")
SUPERSAMPLE = 4


@dataclass(frozen=True)
class ShapeSpec:
    """Everything that decides one picture."""

    shape: str
    colour: str
    texture: str
    centre: tuple[float, float]  # as fractions of the side
    scale: float  # radius as a fraction of the side
    angle: float  # radians
    background: tuple[int, int, int]
    stripe_angle: float


def describe(shape: str, colour: str, texture: str = "plain") -> str:
    """'red circle', 'striped blue star' (a plain texture is not named)."""
    return f"{colour} {shape}" if texture == "plain" else f"{texture} {colour} {shape}"


def caption(shape: str, colour: str, texture: str, template: int = 0) -> str:
    text = TEMPLATES[template].format(desc=describe(shape, colour, texture))
    return _fix_article(text)


def _fix_article(text: str) -> str:
    words = text.split(" ")
    for i, word in enumerate(words[:-1]):
        if word in ("a", "an"):
            words[i] = "an" if words[i + 1][0] in "aeiou" else "a"
    return " ".join(words)


def random_spec(rng: np.random.Generator, shape: str | None = None, colour: str | None = None,
                texture: str | None = None) -> ShapeSpec:
    """A random pose and background; unspecified attributes drawn uniformly."""
    return ShapeSpec(
        shape=shape or str(rng.choice(SHAPES)),
        colour=colour or str(rng.choice(list(COLOURS))),
        texture=texture or str(rng.choice(TEXTURES)),
        centre=(float(rng.uniform(0.38, 0.62)), float(rng.uniform(0.38, 0.62))),
        scale=float(rng.uniform(0.28, 0.38)),
        angle=float(rng.uniform(-0.35, 0.35)),
        background=tuple(int(v) for v in rng.integers(0, 60, size=3)),  # type: ignore[arg-type]
        stripe_angle=float(rng.uniform(0, math.pi)),
    )


def _polygon(points: list[tuple[float, float]], spec: ShapeSpec,
             side: float) -> list[tuple[float, float]]:
    """Unit-radius points -> rotated, scaled, placed canvas coordinates."""
    cos, sin = math.cos(spec.angle), math.sin(spec.angle)
    cx, cy, r = spec.centre[0] * side, spec.centre[1] * side, spec.scale * side
    return [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in points]


def _regular(n: int, start: float = -math.pi / 2, radius: float = 1.0) -> list[tuple[float, float]]:
    return [(radius * math.cos(start + 2 * math.pi * k / n),
             radius * math.sin(start + 2 * math.pi * k / n)) for k in range(n)]


_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": _regular(3, radius=1.05),
    "diamond": [(0, -1), (0.62, 0), (0, 1), (-0.62, 0)],
    "star": [p for k in range(5) for p in (_regular(5)[k], _regular(5, -math.pi / 2 + math.pi / 5,
                                                                   0.42)[k])],
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
              (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "arrow": [(-1, -0.28), (0.15, -0.28), (0.15, -0.75), (1, 0), (0.15, 0.75), (0.15, 0.28),
              (-1, 0.28)],
    "heart": [(16 * math.sin(t) ** 3 / 17,
               -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
               / 17 - 0.1) for t in np.linspace(0, 2 * math.pi, 60, endpoint=False)],
}


def shape_mask(spec: ShapeSpec, size: int) -> np.ndarray:
    """The shape's coverage at ``size`` x ``size``, floats in [0, 1] (anti-aliased)."""
    side = size * SUPERSAMPLE
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    if spec.shape in _OUTLINES:
        draw.polygon(_polygon(_OUTLINES[spec.shape], spec, side), fill=255)
    else:
        _draw_round(draw, spec, side)
    return _downsample(np.asarray(canvas, dtype=np.float32) / 255.0)


def _draw_round(draw: ImageDraw.ImageDraw, spec: ShapeSpec, side: float) -> None:
    cx, cy, r = spec.centre[0] * side, spec.centre[1] * side, spec.scale * side

    def disc(x: float, y: float, radius: float, fill: int) -> None:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill)

    if spec.shape == "circle":
        disc(cx, cy, r, 255)
    elif spec.shape == "ring":
        disc(cx, cy, r, 255)
        disc(cx, cy, 0.55 * r, 0)
    elif spec.shape == "crescent":
        disc(cx, cy, r, 255)
        offset = 0.45 * r
        disc(cx + offset * math.cos(spec.angle), cy + offset * math.sin(spec.angle), 0.85 * r, 0)
    else:
        raise ValueError(f"unknown shape {spec.shape!r}; valid shapes: {', '.join(SHAPES)}")


def _downsample(array: np.ndarray) -> np.ndarray:
    side = array.shape[0] // SUPERSAMPLE
    return array.reshape(side, SUPERSAMPLE, side, SUPERSAMPLE).mean(axis=(1, 3))


def texture_mask(spec: ShapeSpec, size: int) -> np.ndarray:
    """Where the texture darkens the shape: stripes or a dot grid, 0 for plain."""
    side = size * SUPERSAMPLE
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / SUPERSAMPLE  # output-pixel units
    period = max(size / 8, 3.0)
    if spec.texture == "plain":
        return np.zeros((size, size), np.float32)
    if spec.texture == "striped":
        u = x * math.cos(spec.stripe_angle) + y * math.sin(spec.stripe_angle)
        fine = ((u / period) % 1.0 < 0.5).astype(np.float32)
    elif spec.texture == "dotted":
        du = (x % period) - period / 2
        dv = (y % period) - period / 2
        fine = (du**2 + dv**2 < (0.3 * period) ** 2).astype(np.float32)
    else:
        raise ValueError(f"unknown texture {spec.texture!r}; valid: {', '.join(TEXTURES)}")
    return _downsample(fine)


def render(spec: ShapeSpec, size: int = 32) -> np.ndarray:
    """The picture as uint8 (size, size, 3)."""
    if spec.colour not in COLOURS:
        raise ValueError(f"unknown colour {spec.colour!r}; valid: {', '.join(COLOURS)}")
    coverage = shape_mask(spec, size)[..., None]
    shade = 1.0 - 0.6 * texture_mask(spec, size)[..., None]  # textures are darker marks
    colour = np.asarray(COLOURS[spec.colour], np.float32) * shade
    background = np.asarray(spec.background, np.float32)
    image = coverage * colour + (1.0 - coverage) * background
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Batch:
    images: np.ndarray  # (n, size, size, 3) uint8
    shapes: np.ndarray  # (n,) indices into SHAPES
    colours: np.ndarray  # (n,) indices into list(COLOURS)
    textures: np.ndarray  # (n,) indices into TEXTURES
    captions: list[str]


def balanced_batch(count: int, seed: int, size: int = 32) -> Batch:
    """``count`` pictures whose shape, colour and texture classes are as balanced as can be
    (each attribute cycles through its classes in a shuffled order), with random captions."""
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)

    def cycle(classes: int) -> np.ndarray:
        return rng.permutation(np.arange(count) % classes)

    shape_ids, colour_ids, texture_ids = cycle(len(SHAPES)), cycle(len(colours)), cycle(3)
    images, captions = [], []
    for s, c, t in zip(shape_ids, colour_ids, texture_ids, strict=True):
        spec = random_spec(rng, SHAPES[s], colours[c], TEXTURES[t])
        images.append(render(spec, size))
        captions.append(caption(SHAPES[s], colours[c], TEXTURES[t],
                                int(rng.integers(len(TEMPLATES)))))
    return Batch(np.stack(images), shape_ids, colour_ids, texture_ids, captions)
