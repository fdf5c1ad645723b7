"""Drawing of single shape instances (mask + appearance), backgrounds and clutter.

Everything here is pure numpy/cv2 and driven by an explicit ``numpy.random.Generator`` so that
a scene is a deterministic function of its RNG.  Images are RGB ``uint8`` arrays of shape HxWx3.
"""
import math
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .categories import COLORS

# A shape is a list of (polygon, value) drawing operations on a binary canvas, in unit
# coordinates (roughly within [-0.5, 0.5]^2, y pointing down): value 1 fills, value 0 cuts.
Ops = List[Tuple[np.ndarray, int]]


def _ngon(n: int, r: float = 0.5, phase_deg: float = -90.0, cx: float = 0.0, cy: float = 0.0,
          rx: float = None, ry: float = None, start_deg: float = None,
          end_deg: float = None) -> np.ndarray:
    rx = r if rx is None else rx
    ry = r if ry is None else ry
    if start_deg is None:
        t = np.deg2rad(phase_deg + 360.0 * np.arange(n) / n)
    else:
        t = np.deg2rad(np.linspace(start_deg, end_deg, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _poly(*pts: Tuple[float, float]) -> np.ndarray:
    return np.asarray(pts, dtype=np.float64)


def _star(points: int = 5, r_out: float = 0.5, r_in: float = 0.21) -> np.ndarray:
    t = np.deg2rad(-90.0 + 180.0 * np.arange(2 * points) / points)
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / (pts.max(0) - pts.min(0)).max()


def _build_shapes() -> Dict[str, Ops]:
    disc = _ngon(48)
    semi = _ngon(25, start_deg=180.0, end_deg=360.0)
    semi[:, 1] += 0.25  # centre the half disc vertically: y in [-0.5, 0] -> [-0.25, 0.25]
    return {
        "circle": [(disc, 1)],
        "ellipse": [(_ngon(40, rx=0.5, ry=0.24), 1)],
        "square": [(_poly((-0.42, -0.42), (0.42, -0.42), (0.42, 0.42), (-0.42, 0.42)), 1)],
        "triangle": [(_ngon(3, r=0.55, cy=0.08), 1)],
        "pentagon": [(_ngon(5, r=0.5), 1)],
        "hexagon": [(_ngon(6, r=0.5, phase_deg=0.0), 1)],
        "star": [(_star(), 1)],
        "cross": [(_poly((-0.15, -0.5), (0.15, -0.5), (0.15, -0.15), (0.5, -0.15), (0.5, 0.15),
                         (0.15, 0.15), (0.15, 0.5), (-0.15, 0.5), (-0.15, 0.15), (-0.5, 0.15),
                         (-0.5, -0.15), (-0.15, -0.15)), 1)],
        "ring": [(disc, 1), (_ngon(40, r=0.27), 0)],
        "crescent": [(disc, 1), (_ngon(48, r=0.42, cx=0.2, cy=-0.04), 0)],
        "heart": [(_heart(), 1)],
        "diamond": [(_poly((0.0, -0.5), (0.28, 0.0), (0.0, 0.5), (-0.28, 0.0)), 1)],
        "arrow": [(_poly((-0.5, -0.1), (0.08, -0.1), (0.08, -0.32), (0.5, 0.0), (0.08, 0.32),
                         (0.08, 0.1), (-0.5, 0.1)), 1)],
        "lshape": [(_poly((-0.38, -0.5), (-0.08, -0.5), (-0.08, 0.2), (0.38, 0.2), (0.38, 0.5),
                          (-0.38, 0.5)), 1)],
        "tshape": [(_poly((-0.5, -0.45), (0.5, -0.45), (0.5, -0.15), (0.15, -0.15), (0.15, 0.5),
                          (-0.15, 0.5), (-0.15, -0.15), (-0.5, -0.15)), 1)],
        "trapezoid": [(_poly((-0.5, 0.28), (0.5, 0.28), (0.22, -0.28), (-0.22, -0.28)), 1)],
        "semicircle": [(semi, 1)],
        "parallelogram": [(_poly((-0.22, -0.25), (0.5, -0.25), (0.22, 0.25), (-0.5, 0.25)), 1)],
        "hourglass": [(_poly((-0.36, -0.5), (0.36, -0.5), (0.07, 0.0), (0.36, 0.5), (-0.36, 0.5),
                             (-0.07, 0.0)), 1)],
        "frame": [(_poly((-0.45, -0.45), (0.45, -0.45), (0.45, 0.45), (-0.45, 0.45)), 1),
                  (_poly((-0.25, -0.25), (0.25, -0.25), (0.25, 0.25), (-0.25, 0.25)), 0)],
    }


SHAPES: Dict[str, Ops] = _build_shapes()

# Aspect jitter per class: the x/y stretch factor is exp(U(-j, j)).  Small for classes whose
# identity depends on their proportions (circle vs ellipse, square vs diamond).
ASPECT_JITTER: Dict[str, float] = {s: 0.15 for s in SHAPES}
ASPECT_JITTER.update({"circle": 0.05, "square": 0.06, "ring": 0.05, "frame": 0.06,
                      "pentagon": 0.06, "hexagon": 0.06, "star": 0.08, "cross": 0.08})

_SHIFT = 4  # sub-pixel precision bits for cv2.fillPoly
_ONE = 1 << _SHIFT


def shape_mask(shape: str, height: int, width: int, cx: float, cy: float, scale: float,
               rotation_deg: float, aspect: float) -> np.ndarray:
    """Binary (uint8 0/1) mask of ``shape`` drawn into an image of the given size.

    The unit shape is stretched by ``aspect`` in x (and 1/aspect in y), scaled by ``scale`` pixels,
    rotated by ``rotation_deg`` (counter-clockwise on screen) and centred at ``(cx, cy)``.
    """
    th = math.radians(rotation_deg)
    c, s = math.cos(th), math.sin(th)
    a = math.sqrt(aspect)
    lin = np.array([[c, s], [-s, c]]) @ np.diag([a, 1.0 / a]) * scale
    mask = np.zeros((height, width), np.uint8)
    for pts, value in SHAPES[shape]:
        xy = pts @ lin.T + (cx - 0.5, cy - 0.5)  # pixel centres at integer coordinates
        fixed = np.round(xy * _ONE).astype(np.int32)
        cv2.fillPoly(mask, [fixed], int(value), lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def _shade(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Darken (factor < 1) or lighten towards white (factor > 1)."""
    if factor <= 1.0:
        return rgb * factor
    return rgb + (255.0 - rgb) * (factor - 1.0)


def texture_patch(texture: str, color: str, h: int, w: int, rng: np.random.Generator,
                  ox: int = 0, oy: int = 0) -> np.ndarray:
    """An ``h x w x 3`` float32 patch of ``texture`` in ``color`` (with slight colour jitter).

    ``(ox, oy)`` is the patch's top-left pixel in the image, so that periodic textures are laid in
    image coordinates.
    """
    base = np.asarray(COLORS[color], np.float32) + rng.uniform(-14, 14, 3).astype(np.float32)
    base = np.clip(base, 0, 255)
    # Second tone: darker for light colours, lighter for dark ones.
    alt = _shade(base, 0.45) if base.mean() > 110 else _shade(base, 1.6)
    yy, xx = np.mgrid[oy:oy + h, ox:ox + w].astype(np.float32)
    if texture == "solid":
        return np.broadcast_to(base, (h, w, 3)).copy()
    if texture == "stripes":
        th = rng.uniform(0, np.pi)
        period = rng.uniform(4.0, 7.0)
        u = xx * math.cos(th) + yy * math.sin(th)
        sel = (np.floor(u / (period / 2)) % 2).astype(bool)
    elif texture == "checker":
        cell = int(rng.integers(3, 6))
        sel = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(bool)
    elif texture == "dots":
        period = int(rng.integers(5, 8))
        r = period * 0.3
        dx = (xx % period) - period / 2 + 0.5
        dy = (yy % period) - period / 2 + 0.5
        sel = dx * dx + dy * dy <= r * r
    elif texture == "gradient":
        th = rng.uniform(0, 2 * np.pi)
        u = (xx - ox) * math.cos(th) + (yy - oy) * math.sin(th)
        u = (u - u.min()) / max(float(u.max() - u.min()), 1.0)
        t = u[..., None]
        return (base * (1.0 - t) + alt * t).astype(np.float32)
    elif texture == "noise":
        t = rng.random((h, w, 1), dtype=np.float32)
        return (base * (1.0 - t) + alt * t).astype(np.float32)
    else:
        raise ValueError(f"Unknown texture {texture!r}")
    out = np.empty((h, w, 3), np.float32)
    out[:] = base
    out[sel] = alt
    return out


def paint(image: np.ndarray, mask: np.ndarray, texture: str, color: str,
          rng: np.random.Generator) -> None:
    """Paint ``texture``/``color`` into ``image`` (in place) where ``mask`` (uint8) is set."""
    x0, y0, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return
    x1, y1 = x0 + bw, y0 + bh
    patch = texture_patch(texture, color, int(y1 - y0), int(x1 - x0), rng, int(x0), int(y0))
    sub = mask[y0:y1, x0:x1].astype(bool)
    image[y0:y1, x0:x1][sub] = np.clip(patch[sub], 0, 255).astype(np.uint8)


def _muted_color(rng: np.random.Generator, lo: float = 70, hi: float = 190,
                 tint: float = 28) -> np.ndarray:
    return np.clip(rng.uniform(lo, hi) + rng.uniform(-tint, tint, 3), 0, 255)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((cells, cells), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted textured/gradient/noisy background (RGB uint8)."""
    kind = rng.integers(4)
    c1, c2 = _muted_color(rng), _muted_color(rng)
    if kind == 0:  # linear gradient
        th = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        u = xx * math.cos(th) + yy * math.sin(th)
        t = ((u - u.min()) / max(float(u.max() - u.min()), 1.0))[..., None]
    elif kind == 1:  # low-frequency blotches
        t = _smooth_noise(rng, height, width, int(rng.integers(3, 7)))[..., None]
    elif kind == 2:  # faint broad stripes
        th = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        u = xx * math.cos(th) + yy * math.sin(th)
        t = (0.5 + 0.5 * np.sin(u * 2 * np.pi / rng.uniform(16, 40)))[..., None] * 0.5
    else:  # plain
        t = np.zeros((height, width, 1), np.float32)
    img = c1 * (1.0 - t) + c2 * t
    return np.clip(img, 0, 255).astype(np.uint8)


def add_clutter(image: np.ndarray, rng: np.random.Generator) -> None:
    """Distractor strokes, scribbles and irregular blobs (none of the 20 shapes), in place."""
    h, w = image.shape[:2]
    for _ in range(int(rng.integers(1, 6))):  # strokes and scribbles
        n = int(rng.integers(2, 5))
        pts = np.stack([rng.integers(-10, w + 10, n), rng.integers(-10, h + 10, n)], 1)
        color = rng.integers(0, 256, 3).tolist() if rng.random() < 0.5 else \
            _muted_color(rng, 30, 230, 40).tolist()
        cv2.polylines(image, [pts.astype(np.int32)], False, color,
                      thickness=int(rng.integers(1, 3)), lineType=cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 4))):  # irregular blobs
        bh, bw = int(rng.integers(6, 26)), int(rng.integers(6, 26))
        field = _smooth_noise(rng, bh, bw, 4)
        yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        falloff = ((yy - bh / 2) / (bh / 2)) ** 2 + ((xx - bw / 2) / (bw / 2)) ** 2
        blob = (field - 0.6 * falloff) > 0.25
        y0, x0 = int(rng.integers(0, max(h - bh, 1))), int(rng.integers(0, max(w - bw, 1)))
        sub = image[y0:y0 + bh, x0:x0 + bw]
        sub[blob[:sub.shape[0], :sub.shape[1]]] = _muted_color(rng, 40, 220, 60).astype(np.uint8)


def add_pixel_noise(image: np.ndarray, rng: np.random.Generator, amplitude: int = 6) -> np.ndarray:
    noise = rng.integers(-amplitude, amplitude + 1, image.shape, dtype=np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
