"""Register the image classification datasets (records as in :mod:`.classification`).

=========================  ==============================================================
``fashion_mnist_*``        Fashion-MNIST train / calib / test (:mod:`.fashion_mnist`)
``digits_{train,test}``    scikit-learn's 8x8 digits (1797 images, shipped with scikit-learn):
                           1497 / 300 images by a permutation with seed 0; 1 channel,
                           pixel values 0..16 scaled to 0..255
``shapes_cls_{split}``     split in {train, val, test}: every non-crowd instance of
                           ``shapes_{split}`` as a crop of its box widened by the generator's
                           ``crop_context`` (0.1 of the box side on each side, clipped to the
                           image); 20 classes, BGR
``shapes_zsl{f}_train``    zero-shot view of few-shot split f in {1,2,3}: the crops of
                           ``shapes_cls_train`` of its 15 base classes only (the seen ones);
                           labels over all 20 classes; metadata ``seen_classes`` (base),
                           ``unseen_classes`` (novel)
``shapes_zsl{f}_val``      every crop of ``shapes_cls_val``, the same labels and metadata
                           (for choosing hyper-parameters)
``shapes_zsl{f}_test``     every crop of ``shapes_cls_test``, the same labels and metadata
                           (the evaluator adds the generalized zero-shot metrics)
=========================  ==============================================================

Every name has ``evaluator_type="classification"``; nothing is read at registration.
"""
import functools
from typing import List

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .catalog import register
from .fashion_mnist import register_fashion_mnist
from .synthetic import FEWSHOT_SPLITS, SyntheticSpec, base_classes, novel_classes

DIGITS_TEST_SIZE = 300
DIGITS_SEED = 0
CROP_CONTEXT = SyntheticSpec.crop_context  # as the synthetic generator's own crops


@functools.lru_cache(maxsize=1)
def _digits():
    """scikit-learn's digits, loaded once per process: images (1797, 8, 8) uint8 0..255
    (read-only) and labels (1797,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    images.flags.writeable = False
    return images, digits.target


def digit_images() -> np.ndarray:
    """scikit-learn's digits as (1797, 8, 8) uint8 0..255 (read-only)."""
    return _digits()[0]


def load_digits_split(split: str) -> List[dict]:
    """Array-backed records of ``digits_{split}``; ``image_id``/``index`` = row in
    scikit-learn's array."""
    labels = _digits()[1]
    perm = np.random.RandomState(DIGITS_SEED).permutation(len(labels))
    indices = np.sort(perm[:DIGITS_TEST_SIZE] if split == "test" else perm[DIGITS_TEST_SIZE:])
    return [{"image_id": int(i), "index": int(i), "label": int(labels[i]),
             "array": ("sklearn_digits", ""), "height": 8, "width": 8} for i in indices]


def crop_box(bbox, bbox_mode, height: int, width: int) -> List[float]:
    """XYXY box widened by :data:`CROP_CONTEXT` of its width/height on each side, clipped to
    the ``height`` x ``width`` image."""
    x0, y0, x1, y1 = BoxMode.convert(list(bbox), bbox_mode, BoxMode.XYXY_ABS)
    dx, dy = CROP_CONTEXT * (x1 - x0), CROP_CONTEXT * (y1 - y0)
    return [max(x0 - dx, 0.0), max(y0 - dy, 0.0), min(x1 + dx, float(width)),
            min(y1 + dy, float(height))]


def load_instance_crops(source: str) -> List[dict]:
    """One crop record per non-crowd instance of detection dataset ``source``; ``label`` is its
    ``category_id``, ``image_id`` its position in this list, ``source_image_id`` the image's."""
    records = []
    for image in DatasetCatalog.get(source):
        for ann in image["annotations"]:
            if ann.get("iscrowd", 0):
                continue
            records.append({
                "image_id": len(records), "source_image_id": image["image_id"],
                "file_name": image["file_name"], "height": image["height"],
                "width": image["width"], "label": int(ann["category_id"]),
                "crop_box": crop_box(ann["bbox"], ann["bbox_mode"], image["height"],
                                     image["width"]),
            })
    return records


def load_seen_crops(source: str, seen: List[str]) -> List[dict]:
    """The crop records of ``source`` whose class is in ``seen`` (its ``thing_classes``)."""
    classes = list(MetadataCatalog.get(source).thing_classes)
    keep = {classes.index(c) for c in seen}
    return [r for r in load_instance_crops(source) if r["label"] in keep]


def register_all_classification() -> None:
    """Register every classification dataset name listed in the module docstring."""
    register_fashion_mnist()
    digits = [str(d) for d in range(10)]
    for split in ("train", "test"):
        register(f"digits_{split}", functools.partial(load_digits_split, split),
                 thing_classes=digits, evaluator_type="classification", image_format="L")
    for split in ("train", "val", "test"):
        source = f"shapes_{split}"
        register(f"shapes_cls_{split}", functools.partial(load_instance_crops, source),
                 thing_classes=list(MetadataCatalog.get(source).thing_classes),
                 evaluator_type="classification", source_dataset=source, image_format="BGR")
    for f in FEWSHOT_SPLITS:
        seen, unseen = base_classes(f), novel_classes(f)
        for split, load in (("train", functools.partial(load_seen_crops, "shapes_train", seen)),
                            ("val", functools.partial(load_instance_crops, "shapes_val")),
                            ("test", functools.partial(load_instance_crops, "shapes_test"))):
            source = f"shapes_{split}"
            register(f"shapes_zsl{f}_{split}", load,
                     thing_classes=list(MetadataCatalog.get(source).thing_classes),
                     seen_classes=seen, unseen_classes=unseen, evaluator_type="classification",
                     source_dataset=source, image_format="BGR")
