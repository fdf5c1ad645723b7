"""Classes, attribute vocabularies and the few-shot splits of the synthetic "shapes" dataset.

The 20 classes are shape families; colour and texture are per-instance attributes.  Each class
has a *preferred* texture and colour (each taken with probability 0.8), so classes differ in
appearance statistically while every (class, colour, texture) combination still occurs.

A *few-shot split* (1, 2 or 3) partitions the classes into 15 base and 5 novel classes; it is
unrelated to the image splits (train/val/test, lvis_train) of :mod:`.spec`.
"""
from typing import Dict, List, Tuple

# Canonical order: COCO category id = index + 1, classification label = index.
ALL_CLASSES: Tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "pentagon",
    "hexagon",
    "star",
    "cross",
    "ring",
    "crescent",
    "heart",
    "diamond",
    "arrow",
    "lshape",
    "tshape",
    "trapezoid",
    "semicircle",
    "ellipse",
    "parallelogram",
    "hourglass",
    "frame",
)

# Supercategory of each class (COCO "supercategory" field).
SUPERCATEGORY: Dict[str, str] = {
    **{c: "round" for c in ("circle", "ellipse", "ring", "crescent", "semicircle", "heart")},
    **{c: "polygon" for c in ("square", "triangle", "pentagon", "hexagon", "diamond",
                              "trapezoid", "parallelogram")},
    **{c: "composite" for c in ("star", "cross", "arrow", "lshape", "tshape", "hourglass",
                                "frame")},
}

# Named colours (RGB).  Backgrounds are drawn in muted, low-saturation tones.
COLORS: Dict[str, Tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (35, 165, 55),
    "cyan": (30, 200, 215),
    "blue": (35, 65, 215),
    "purple": (135, 45, 185),
    "pink": (245, 120, 190),
}
COLOR_NAMES: Tuple[str, ...] = tuple(COLORS)

TEXTURES: Tuple[str, ...] = ("solid", "stripes", "checker", "dots", "gradient", "noise")

# COCO's area ranges on the (visible) mask area: small < 32^2 <= medium < 96^2 <= large.
SIZES: Tuple[str, ...] = ("small", "medium", "large")

PREFERRED_TEXTURE_PROB = 0.8
PREFERRED_TEXTURE: Dict[str, str] = {
    "circle": "solid",
    "square": "checker",
    "triangle": "stripes",
    "pentagon": "dots",
    "hexagon": "gradient",
    "star": "noise",
    "cross": "solid",
    "ring": "stripes",
    "crescent": "gradient",
    "heart": "dots",
    "diamond": "checker",
    "arrow": "noise",
    "lshape": "stripes",
    "tshape": "dots",
    "trapezoid": "solid",
    "semicircle": "checker",
    "ellipse": "noise",
    "parallelogram": "gradient",
    "hourglass": "checker",
    "frame": "solid",
}

# Each class also has a preferred colour (taken with probability ``PREFERRED_COLOR_PROB``,
# independently of the texture); the (texture, colour) pairs are distinct, so appearance and
# shape both carry the class, as in natural categories, while every attribute-object
# combination still occurs.
PREFERRED_COLOR_PROB = 0.8
PREFERRED_COLOR: Dict[str, str] = {
    "circle": "red",
    "square": "orange",
    "triangle": "yellow",
    "pentagon": "green",
    "hexagon": "cyan",
    "star": "blue",
    "cross": "orange",
    "ring": "blue",
    "crescent": "green",
    "heart": "cyan",
    "diamond": "blue",
    "arrow": "purple",
    "lshape": "red",
    "tshape": "purple",
    "trapezoid": "cyan",
    "semicircle": "red",
    "ellipse": "orange",
    "parallelogram": "pink",
    "hourglass": "purple",
    "frame": "pink",
}

# The novel classes of the three few-shot splits (15 base / 5 novel classes each), in the style
# of few-shot Pascal VOC: fixed lists, each mixing easy and hard classes, pairwise different.
NOVEL_CLASSES: Dict[int, List[str]] = {
    1: ["triangle", "star", "ring", "arrow", "ellipse"],
    2: ["square", "hexagon", "heart", "tshape", "hourglass"],
    3: ["circle", "crescent", "diamond", "trapezoid", "frame"],
}
FEWSHOT_SPLITS: Tuple[int, ...] = tuple(sorted(NOVEL_CLASSES))

# Short definitions, used for the LVIS "def" field.
DEFINITIONS: Dict[str, str] = {
    "circle": "a round filled disc",
    "square": "a filled quadrilateral with four equal sides and right angles",
    "triangle": "a filled equilateral triangle",
    "pentagon": "a filled regular five-sided polygon",
    "hexagon": "a filled regular six-sided polygon",
    "star": "a five-pointed star",
    "cross": "a plus sign with two equal thick bars",
    "ring": "an annulus: a disc with a round hole",
    "crescent": "a disc with an off-centre disc cut away",
    "heart": "a heart symbol",
    "diamond": "a rhombus elongated along one diagonal",
    "arrow": "a straight arrow with a triangular head",
    "lshape": "an L-shaped polyomino",
    "tshape": "a T-shaped polyomino",
    "trapezoid": "a quadrilateral with two parallel sides of different length",
    "semicircle": "half of a disc",
    "ellipse": "an elongated filled ellipse",
    "parallelogram": "a slanted quadrilateral with parallel opposite sides",
    "hourglass": "two triangles meeting at their tips",
    "frame": "a hollow square",
}


def _check_fewshot_split(fewshot_split: int) -> int:
    if isinstance(fewshot_split, bool) or fewshot_split not in NOVEL_CLASSES:
        raise ValueError(f"Unknown few-shot split {fewshot_split!r}; valid few-shot splits are "
                         f"{list(FEWSHOT_SPLITS)}.")
    return fewshot_split


def novel_classes(fewshot_split: int) -> List[str]:
    """The 5 novel classes of few-shot split ``fewshot_split`` (1, 2 or 3), in canonical order."""
    novel = set(NOVEL_CLASSES[_check_fewshot_split(fewshot_split)])
    return [c for c in ALL_CLASSES if c in novel]


def base_classes(fewshot_split: int) -> List[str]:
    """The 15 base classes of few-shot split ``fewshot_split``, in canonical order."""
    novel = set(NOVEL_CLASSES[_check_fewshot_split(fewshot_split)])
    return [c for c in ALL_CLASSES if c not in novel]


def all_classes(fewshot_split: int) -> List[str]:
    """Base classes followed by novel classes (TFA's ordering convention)."""
    return base_classes(fewshot_split) + novel_classes(fewshot_split)
