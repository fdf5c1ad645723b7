"""Scene composition: the per-image RNG, class and pose sampling, and rendering of one image.

Every image is a deterministic function of ``(spec, split, index)``: its RNG is
``numpy.random.default_rng([spec.seed, split_code, index])``.  Images can therefore be rendered in
any order, by any number of worker processes, with identical results.
"""
import math
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from .categories import (
    ALL_CLASSES,
    COLOR_NAMES,
    PREFERRED_COLOR,
    PREFERRED_COLOR_PROB,
    PREFERRED_TEXTURE,
    PREFERRED_TEXTURE_PROB,
    TEXTURES,
)
from .render import ASPECT_JITTER, add_clutter, add_pixel_noise, background, paint, shape_mask
from .spec import SPLITS, SyntheticSpec, check_split

# Long-tailed class sampling for lvis_train: P(rank k) ~ exp(-k / LVIS_DECAY) over a fixed
# permutation of the classes (the same for every seed).
LVIS_PERMUTATION_SEED = 20190805
LVIS_DECAY = 2.9


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLITS[check_split(split)], int(index)])


def lvis_class_probs() -> np.ndarray:
    """Per-class sampling probabilities (canonical order) of the long-tailed lvis_train split."""
    perm = lvis_class_ranking()
    w = np.exp(-np.arange(len(ALL_CLASSES)) / LVIS_DECAY)
    p = np.empty(len(ALL_CLASSES))
    p[perm] = w / w.sum()
    return p


def lvis_class_ranking() -> np.ndarray:
    """Class indices from most to least frequent in lvis_train."""
    return np.random.default_rng(LVIS_PERMUTATION_SEED).permutation(len(ALL_CLASSES))


def _sample_pose(rng, spec: SyntheticSpec, shape: str, scale: float, h: int, w: int):
    rotation = float(rng.uniform(0.0, 360.0))
    aspect = math.exp(rng.uniform(-ASPECT_JITTER[shape], ASPECT_JITTER[shape]))
    m = 0.5 - spec.max_truncation
    mx, my = min(m * scale, w / 2), min(m * scale, h / 2)
    cx, cy = float(rng.uniform(mx, w - mx)), float(rng.uniform(my, h - my))
    return rotation, aspect, cx, cy


def _preferred_or_other(rng: np.random.Generator, preferred: str, prob: float,
                        choices: Sequence[str]) -> str:
    """``preferred`` with probability ``prob``, else one of the other ``choices`` uniformly."""
    if rng.random() < prob:
        return preferred
    others = [c for c in choices if c != preferred]
    return others[int(rng.integers(len(others)))]


def render_scene(spec: SyntheticSpec, split: str, index: int
                 ) -> Tuple[np.ndarray, List[dict], np.random.Generator]:
    """Render image ``index`` of ``split``: (RGB uint8 image, instances, its RNG after use).

    Each instance dict holds the visible ``mask`` (uint8), ``category`` (index), ``attributes``
    and ``truncated``; instances are listed back to front.
    """
    rng = image_rng(spec.seed, split, index)
    sizes = np.arange(spec.min_size, spec.max_size + 1, spec.size_step)
    w, h = int(rng.choice(sizes)), int(rng.choice(sizes))
    lvis_p = lvis_class_probs() if split == "lvis_train" else None
    forced = None
    if split == "lvis_train" and index < len(ALL_CLASSES):
        forced = int(lvis_class_ranking()[-1 - index])  # every class occurs at least once

    for _ in range(20):  # re-compose in the (rare) case that too few objects fit
        img = background(rng, h, w)
        add_clutter(img, rng)
        labels = np.full((h, w), -1, np.int16)  # index of the top-most instance per pixel
        objs: List[dict] = []
        full_counts: List[int] = []
        vis_counts = np.zeros(0, np.int64)
        n = int(rng.integers(spec.min_objects, spec.max_objects + 1))
        slots = []
        for slot in range(n):
            if forced is not None and slot == 0:
                cat = forced
            elif lvis_p is not None:
                cat = int(rng.choice(len(ALL_CLASSES), p=lvis_p))
            else:
                cat = int(rng.integers(len(ALL_CLASSES)))
            shape = ALL_CLASSES[cat]
            color = _preferred_or_other(rng, PREFERRED_COLOR[shape], PREFERRED_COLOR_PROB,
                                        COLOR_NAMES)
            texture = _preferred_or_other(rng, PREFERRED_TEXTURE[shape], PREFERRED_TEXTURE_PROB,
                                          TEXTURES)
            log_s = rng.uniform(math.log(spec.min_scale), math.log(spec.max_scale))
            scale = min(math.exp(log_s), 0.95 * min(h, w))
            # Paint roughly from large to small (so that large objects can fit at all), with
            # enough jitter that similar-sized objects occlude each other in either order.
            slots.append((log_s + rng.normal(0.0, 0.5), cat, shape, color, texture, scale))
        slots.sort(key=lambda t: -t[0])
        for _key, cat, shape, color, texture, scale in slots:
            for attempt in range(8):
                if attempt >= 4:  # does not fit where it is tried: shrink it
                    scale = max(scale * 0.75, spec.min_scale)
                rot, aspect, cx, cy = _sample_pose(rng, spec, shape, scale, h, w)
                mask = shape_mask(shape, h, w, cx, cy, scale, rot, aspect)
                full = mask.astype(bool)
                count = int(np.count_nonzero(full))
                if count < spec.min_area:
                    continue
                if objs:
                    covered = np.bincount(labels[full] + 1, minlength=len(objs) + 1)[1:]
                    left = vis_counts - covered
                    if np.any(left < spec.min_visible * np.asarray(full_counts)) or \
                            np.any(left < spec.min_area):
                        continue
                    vis_counts = left
                labels[full] = len(objs)
                vis_counts = np.append(vis_counts, count)
                full_counts.append(count)
                bx, by, bw, bh = cv2.boundingRect(mask)
                truncated = int(bx == 0 or by == 0 or bx + bw == w or by + bh == h)
                paint(img, mask, texture, color, rng)
                objs.append({"category": cat, "truncated": truncated, "attributes": {
                    "shape": shape, "color": color, "texture": texture, "size": None,
                    "scale_px": round(scale, 2), "rotation_deg": round(rot, 2),
                    "occluded_fraction": None}})
                break
        if len(objs) >= spec.min_objects:
            break
    img = add_pixel_noise(img, rng)
    for j, o in enumerate(objs):
        o["mask"] = (labels == j).astype(np.uint8)
        o["attributes"]["occluded_fraction"] = round(1.0 - float(vis_counts[j]) / full_counts[j], 4)
    return img, objs, rng
