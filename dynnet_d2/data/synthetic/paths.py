"""Where the synthetic dataset's files are, and reading its manifest and classification view."""
import json
import os
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from ...utils.env import datasets_root
from .spec import COCO_SPLITS, DATASET_NAME, GENERATOR_VERSION, LVIS_SPLITS, SyntheticSpec

PathLike = Union[str, os.PathLike]


def default_root() -> Path:
    """The datasets root: ``$DYNNET_DATASETS``, else ``$DETECTRON2_DATASETS``, else ./datasets."""
    return Path(datasets_root())


def dataset_dir(root: Optional[PathLike] = None) -> Path:
    return Path(default_root() if root is None else root) / DATASET_NAME


def voc_dir(root: Optional[PathLike] = None) -> Path:
    return dataset_dir(root) / "VOC"


def image_root(root: Optional[PathLike] = None) -> Path:
    """Directory holding every image; COCO/LVIS ``file_name`` fields are relative to it."""
    return voc_dir(root) / "JPEGImages"


def coco_json_path(split: str, root: Optional[PathLike] = None) -> Path:
    if split not in COCO_SPLITS:
        raise ValueError(f"Unknown COCO split {split!r}; valid splits are {list(COCO_SPLITS)}.")
    return dataset_dir(root) / "annotations" / f"instances_{split}.json"


def lvis_json_path(split: str, root: Optional[PathLike] = None) -> Path:
    if split not in LVIS_SPLITS:
        raise ValueError(f"Unknown LVIS split {split!r}; valid splits are {list(LVIS_SPLITS)}.")
    return dataset_dir(root) / "annotations" / f"lvis_v0.5_{split}.json"


def classification_path(split: str, root: Optional[PathLike] = None) -> Path:
    if split not in COCO_SPLITS:
        raise ValueError(
            f"Unknown classification split {split!r}; valid splits are {list(COCO_SPLITS)}.")
    return dataset_dir(root) / "classification" / f"{split}.npz"


def manifest_path(root: Optional[PathLike] = None) -> Path:
    return dataset_dir(root) / "manifest.json"


def read_manifest(root: Optional[PathLike] = None) -> Optional[dict]:
    """The manifest as a dict, or None if it is missing or unreadable."""
    try:
        with open(manifest_path(root)) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def is_complete(root: Optional[PathLike] = None, spec: SyntheticSpec = SyntheticSpec()) -> bool:
    """Whether ``root/shapes`` holds a complete dataset made from ``spec`` by this generator."""
    m = read_manifest(root)
    return bool(m) and m.get("generator_version") == GENERATOR_VERSION \
        and m.get("spec") == spec.to_dict()


def load_classification(split: str, root: Optional[PathLike] = None) -> Dict[str, np.ndarray]:
    """The classification view of ``split``: ``images`` (N,S,S,3 uint8), ``labels`` (0..19 in
    ``ALL_CLASSES`` order), ``color``/``texture``/``size`` indices and COCO ``image_ids``."""
    with np.load(classification_path(split, root)) as z:
        return {k: z[k] for k in z.files}
