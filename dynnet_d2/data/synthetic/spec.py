"""What determines the synthetic dataset's content: the spec, the image splits, the version."""
import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

GENERATOR_VERSION = "shapes-3"
DATASET_NAME = "shapes"

# Image split name -> code used in the RNG seed and in integer image ids (code * 1e6 + index + 1).
SPLITS: Dict[str, int] = {"train": 1, "val": 2, "test": 3, "lvis_train": 4}
COCO_SPLITS: Tuple[str, ...] = ("train", "val", "test")
LVIS_SPLITS: Tuple[str, ...] = ("train", "val")  # lvis "val" = the (exhaustive) test images


def check_split(split: str) -> str:
    """``split`` if it is one of ``SPLITS``, else a ValueError listing the valid names."""
    if split not in SPLITS:
        raise ValueError(f"Unknown synthetic split {split!r}; valid splits are {list(SPLITS)}.")
    return split


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines the dataset's content (part of the manifest)."""

    num_train: int = 3000
    num_val: int = 300
    num_test: int = 500
    num_lvis_train: int = 2000
    seed: int = 0
    min_objects: int = 2
    max_objects: int = 5
    # Image width and height are each drawn from range(min_size, max_size + 1, size_step).
    min_size: int = 128
    max_size: int = 192
    size_step: int = 16
    # Object scale (side of the shape's unit box, pixels): log-uniform in [min_scale, max_scale].
    min_scale: float = 20.0
    max_scale: float = 200.0
    min_visible: float = 0.5  # instances keep at least this fraction of their pixels visible
    min_area: int = 24  # and at least this many visible pixels
    max_truncation: float = 0.2  # fraction of an object's box that may lie outside the image
    jpeg_quality: int = 95
    crop_size: int = 32
    crop_context: float = 0.1
    neg_categories: int = 3  # LVIS neg_category_ids per image

    def __post_init__(self) -> None:
        counts = [self.num_train, self.num_val, self.num_test, self.num_lvis_train]
        if min(counts) < 0:
            raise ValueError(f"image counts must be >= 0, got {counts}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got "
                             f"{self.min_objects}, {self.max_objects}")
        if not 0 < self.min_size <= self.max_size or self.size_step <= 0:
            raise ValueError(f"bad image sizes {self.min_size}..{self.max_size} "
                             f"step {self.size_step}")
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got "
                             f"{self.min_scale}, {self.max_scale}")

    def num_images(self, split: str) -> int:
        return int(getattr(self, "num_" + check_split(split)))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
