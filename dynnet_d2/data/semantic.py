"""Semantic-segmentation views of the synthetic shapes (DeepMoE's segmentation task, thesis
§3.4): ``shapes_sem_{train,val,test}``.

Each image's label map is made from its instance masks (the COCO export's visible polygons):
0 is background, ``k`` (1..20) the k-th class of the canonical order (:data:`ALL_CLASSES`),
instances painted largest first so a smaller one stays on top where masks touch. The maps are
PNG files written once, atomically, under ``<dataset dir>/semantic/<split>/`` (a map already
there is kept: the same image always gives the same map), so every process and rank reads the
same files. Metadata: ``stuff_classes`` ``["background", *ALL_CLASSES]``, ``ignore_label``
255, ``evaluator_type`` ``"sem_seg"`` (Detectron2's ``SemSegEvaluator``: mIoU, fwIoU, mACC,
pACC). Records: ``file_name``, ``sem_seg_file_name``, ``height``, ``width``, ``image_id``.
"""
from functools import partial
from pathlib import Path
from typing import List, Optional

import numpy as np
from detectron2.data.datasets import load_coco_json
from PIL import Image
from pycocotools import mask as mask_util

from ..utils.io import atomic_open
from . import synthetic
from .builtin import ensure_shapes
from .catalog import register
from .errors import DatasetFormatError
from .synthetic import ALL_CLASSES, COCO_SPLITS

SEMANTIC_CLASSES = ["background", *ALL_CLASSES]
IGNORE_LABEL = 255


def label_map(annotations: List[dict], height: int, width: int) -> np.ndarray:
    """``(height, width)`` uint8: 0 background, an annotation's ``category_id`` (1..20, the JSON's
    ids) where its mask is, the largest instances painted first."""
    labels = np.zeros((height, width), np.uint8)
    masks = []
    for ann in annotations:
        segmentation = ann["segmentation"]
        if isinstance(segmentation, list):  # polygons
            rle = mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
            rle = mask_util.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        mask = mask_util.decode(rle).astype(bool)
        masks.append((int(mask.sum()), ann["category_id"], mask))
    for _, category, mask in sorted(masks, key=lambda m: -m[0]):
        labels[mask] = category
    return labels


def semantic_dir(split: str, root: Optional[str] = None) -> Path:
    return synthetic.dataset_dir(root) / "semantic" / split


def load_shapes_semantic(split: str, root: Optional[str] = None) -> List[dict]:
    """The records of ``shapes_sem_{split}``, making the label maps that are not there yet."""
    ensure_shapes(root)
    dicts = load_coco_json(str(synthetic.coco_json_path(split, root)),
                           str(synthetic.image_root(root)))
    folder = semantic_dir(split, root)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for d in dicts:
        path = folder / (Path(d["file_name"]).stem + ".png")
        if not path.is_file():
            # without a dataset name, load_coco_json keeps the JSON's category ids (1..20)
            anns = [a for a in d["annotations"] if not a.get("iscrowd", 0)]
            if any("segmentation" not in a for a in anns):
                raise DatasetFormatError(
                    f"{synthetic.coco_json_path(split, root)}, image {d['file_name']!r}: an "
                    f"annotation has no segmentation; the semantic-segmentation views make "
                    f"their label maps from instance masks")
            with atomic_open(path, "wb") as f:
                Image.fromarray(label_map(anns, d["height"], d["width"])).save(f, format="PNG")
        records.append({"file_name": d["file_name"], "sem_seg_file_name": str(path),
                        "height": d["height"], "width": d["width"], "image_id": d["image_id"]})
    return records


def register_semantic_shapes(root: Optional[str] = None) -> None:
    """Register ``shapes_sem_{split}`` for the data under ``root`` (module docstring)."""
    root = str(Path(root) if root else synthetic.default_root().resolve())
    for split in COCO_SPLITS:
        register(f"shapes_sem_{split}", partial(load_shapes_semantic, split, root),
                 stuff_classes=list(SEMANTIC_CLASSES), ignore_label=IGNORE_LABEL,
                 evaluator_type="sem_seg", image_root=str(synthetic.image_root(root)),
                 sem_seg_root=str(semantic_dir(split, root)))


__all__ = ["SEMANTIC_CLASSES", "IGNORE_LABEL", "label_map", "load_shapes_semantic",
           "register_semantic_shapes", "semantic_dir"]
