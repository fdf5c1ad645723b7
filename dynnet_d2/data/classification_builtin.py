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
``shapes_pairs_{a}_{split}``  compositional view, a in {color, texture}: each crop of
                           ``shapes_cls_{split}`` labelled by its (a, shape) pair, classes
                           ``"<value> <shape>"`` value-major (8 x 20 colour, 6 x 20 texture
                           pairs); a quarter of the pairs, drawn with seed 0, are unseen: the
                           train view leaves their crops out, val and test keep every crop;
                           metadata ``seen_classes``, ``unseen_classes``, ``pair_components``
                           (per class: [value index, shape index]), ``attribute_values``,
                           ``object_classes`` and ``class_descriptions`` (per class: one-hot
                           value then one-hot shape)
=========================  ==============================================================

Every name has ``evaluator_type="classification"``; nothing is read at registration.
"""
import functools
from typing import Iterator, List, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .catalog import register
from .fashion_mnist import register_fashion_mnist
from .synthetic import FEWSHOT_SPLITS, SyntheticSpec, base_classes, novel_classes
from .synthetic.categories import ALL_CLASSES, COLOR_NAMES, TEXTURES

DIGITS_TEST_SIZE = 300
DIGITS_SEED = 0
CROP_CONTEXT = SyntheticSpec.crop_context  # as the synthetic generator's own crops
# Compositional views: the attribute paired with the shape -> its values; the unseen pairs.
PAIR_ATTRIBUTES = {"color": COLOR_NAMES, "texture": TEXTURES}
UNSEEN_PAIR_FRACTION = 0.25
PAIR_SPLIT_SEED = 0


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


def instance_crops(source: str) -> Iterator[Tuple[dict, dict]]:
    """``(annotation, crop record)`` of every non-crowd instance of detection dataset ``source``,
    in order; the record's ``label`` is the ``category_id``, ``source_image_id`` the image's
    (no ``image_id``: the views number their own records)."""
    for image in DatasetCatalog.get(source):
        for ann in image["annotations"]:
            if ann.get("iscrowd", 0):
                continue
            yield ann, {
                "source_image_id": image["image_id"], "file_name": image["file_name"],
                "height": image["height"], "width": image["width"],
                "label": int(ann["category_id"]),
                "crop_box": crop_box(ann["bbox"], ann["bbox_mode"], image["height"],
                                     image["width"]),
            }


def load_instance_crops(source: str) -> List[dict]:
    """One crop record per non-crowd instance of detection dataset ``source``; ``label`` is its
    ``category_id``, ``image_id`` its position in this list, ``source_image_id`` the image's."""
    return [{"image_id": i, **crop} for i, (_, crop) in enumerate(instance_crops(source))]


def load_seen_crops(source: str, seen: List[str]) -> List[dict]:
    """The crop records of ``source`` whose class is in ``seen`` (its ``thing_classes``)."""
    classes = list(MetadataCatalog.get(source).thing_classes)
    keep = {classes.index(c) for c in seen}
    return [r for r in load_instance_crops(source) if r["label"] in keep]


def pair_classes(attribute: str) -> List[str]:
    """The ``"<value> <shape>"`` classes of the (``attribute``, shape) pairs, value-major."""
    return [f"{value} {shape}" for value in PAIR_ATTRIBUTES[attribute] for shape in ALL_CLASSES]


def unseen_pairs(attribute: str) -> List[str]:
    """The unseen pairs: :data:`UNSEEN_PAIR_FRACTION` of :func:`pair_classes`, drawn with
    :data:`PAIR_SPLIT_SEED`, in class order."""
    classes = pair_classes(attribute)
    count = round(UNSEEN_PAIR_FRACTION * len(classes))
    drawn = np.random.RandomState(PAIR_SPLIT_SEED).choice(len(classes), count, replace=False)
    return [classes[i] for i in sorted(drawn)]


def pair_metadata(attribute: str) -> dict:
    """The metadata of the ``shapes_pairs_{attribute}_*`` views (module docstring)."""
    values, classes = PAIR_ATTRIBUTES[attribute], pair_classes(attribute)
    unseen = unseen_pairs(attribute)
    components = [[v, o] for v in range(len(values)) for o in range(len(ALL_CLASSES))]
    descriptions = {c: [float(i == v) for i in range(len(values))]
                    + [float(i == o) for i in range(len(ALL_CLASSES))]
                    for c, (v, o) in zip(classes, components)}
    return {"thing_classes": classes, "seen_classes": [c for c in classes if c not in unseen],
            "unseen_classes": unseen, "pair_components": components,
            "attribute_values": list(values), "object_classes": list(ALL_CLASSES),
            "class_descriptions": descriptions}


def load_pair_crops(source: str, attribute: str, seen_only: bool) -> List[dict]:
    """The crop records of detection dataset ``source`` labelled by their (``attribute``,
    shape) pair; with ``seen_only``, only those of seen pairs."""
    values, objects = PAIR_ATTRIBUTES[attribute], list(MetadataCatalog.get(source).thing_classes)
    index = {c: i for i, c in enumerate(pair_classes(attribute))}
    unseen = set(unseen_pairs(attribute))
    records = []
    for ann, crop in instance_crops(source):
        value = ann.get("attributes", {}).get(attribute)
        if value not in values:
            raise ValueError(f"{source}: image {crop['source_image_id']} has an object whose "
                             f"{attribute!r} attribute is {value!r}; expected one of "
                             f"{list(values)}")
        pair = f"{value} {objects[ann['category_id']]}"
        if not (seen_only and pair in unseen):
            records.append({"image_id": len(records), **crop, "label": index[pair]})
    return records


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
    for attribute in PAIR_ATTRIBUTES:
        for split in ("train", "val", "test"):
            source = f"shapes_{split}"
            register(f"shapes_pairs_{attribute}_{split}",
                     functools.partial(load_pair_crops, source, attribute, split == "train"),
                     **pair_metadata(attribute), evaluator_type="classification",
                     source_dataset=source, image_format="BGR")
