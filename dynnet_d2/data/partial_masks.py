"""Partially supervised instance segmentation data (thesis ch. 8, ShapeProp): every instance
keeps its box, only some keep their mask.

* category-wise: masks kept only for a named subset of the classes (e.g. the base classes of a
  few-shot split; evaluation then measures mask AP on the classes that had none);
* image-wise: masks kept for a seeded fraction of the images.

A view is a new registered name over a registered source; its records are copies of the
source's with ``"segmentation"`` removed from the annotations that lose their mask. Registered
for the synthetic data (``register_shapes_partial_masks``):

==========================================  ==================================================
``shapes_train_masks_{base,novel}{f}``      masks only for the base / novel classes of
                                            few-shot split f in {1, 2, 3}; all 20 classes' boxes
``shapes_train_masks_{P}pct_seed{N}``       masks on P % of the images (P in 10, 50), seed N
                                            in 0..2
``coco_2017_train_masks_{voc,nonvoc}``      masks only on COCO's 20 VOC classes / the other 60
(and ``coco_2014_train_masks_*``)           (the partially supervised protocol)
==========================================  ==================================================

Without a view, ``DATASETS.TRAIN_MASK_CLASSES`` / ``TRAIN_MASK_FRACTION`` / ``TRAIN_MASK_SEED``
do the same to ``DATASETS.TRAIN`` (:func:`masks_from_config`).
"""
import math
from functools import partial
from typing import Iterable, List, Optional

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from .catalog import register
from .synthetic import FEWSHOT_SPLITS, base_classes, novel_classes

SHAPES_MASK_PERCENTS = (10, 50)
SHAPES_MASK_SEEDS = range(3)


def without_mask(annotation: dict) -> dict:
    """A copy of ``annotation`` without its ``"segmentation"`` (box and class kept)."""
    return {k: v for k, v in annotation.items() if k != "segmentation"}


def without_masks_outside_classes(dicts: List[dict], keep_ids: Iterable[int]) -> List[dict]:
    """Copies of ``dicts`` whose annotations keep ``"segmentation"`` only when their
    ``category_id`` is in ``keep_ids``."""
    keep_ids = set(keep_ids)
    return [dict(d, annotations=[a if a["category_id"] in keep_ids else without_mask(a)
                                 for a in d.get("annotations", ())]) for d in dicts]


def images_keeping_masks(image_ids: List, fraction: float, seed: int) -> set:
    """The ``ceil(fraction * len(image_ids))`` image ids that keep their masks: a permutation
    with ``seed`` of the sorted ids, so the choice does not depend on the record order."""
    ordered = sorted(image_ids)
    count = math.ceil(fraction * len(ordered))
    chosen = np.random.RandomState(seed).permutation(len(ordered))[:count]
    return {ordered[i] for i in chosen}


def without_masks_outside_images(dicts: List[dict], fraction: float, seed: int) -> List[dict]:
    """Copies of ``dicts`` where only the images of :func:`images_keeping_masks` keep
    ``"segmentation"``."""
    keep = images_keeping_masks([d["image_id"] for d in dicts], fraction, seed)
    return [d if d["image_id"] in keep
            else dict(d, annotations=[without_mask(a) for a in d.get("annotations", ())])
            for d in dicts]


def _load_view(source: str, mask_classes: Optional[List[str]], fraction: Optional[float],
               seed: int) -> List[dict]:
    return with_partial_masks(DatasetCatalog.get(source),
                              list(MetadataCatalog.get(source).get("thing_classes", ())),
                              mask_classes, fraction, seed)


def register_partial_masks(name: str, source: str, *, mask_classes: Optional[List[str]] = None,
                           fraction: Optional[float] = None, seed: int = 0) -> str:
    """Register ``name``: ``source`` with masks kept only for ``mask_classes`` (class names of
    ``source``) and/or on a ``fraction`` in (0, 1] of its images chosen with ``seed``. The
    metadata are ``source``'s plus ``mask_classes``, ``mask_fraction``, ``mask_seed`` and
    ``source_dataset``. Unknown classes or a fraction outside (0, 1] raise ``ValueError``
    naming them."""
    metadata = MetadataCatalog.get(source).as_dict()
    check_mask_subset(f"partial-mask view {name!r} of {source!r}", metadata.get("thing_classes"),
                      mask_classes, fraction)
    metadata.pop("name", None)
    metadata.pop("json_file", None)  # the source's JSON has every mask; the view does not
    metadata.update(mask_classes=None if mask_classes is None else list(mask_classes),
                    mask_fraction=fraction, mask_seed=seed, source_dataset=source)
    return register(name, partial(_load_view, source, None if mask_classes is None
                                  else list(mask_classes), fraction, seed), **metadata)


def check_mask_subset(where: str, classes: Optional[List[str]], mask_classes, fraction) -> None:
    """Mask classes must be classes of the data and the fraction in (0, 1]; ``ValueError``
    naming ``where`` (a view or a config key) otherwise."""
    if mask_classes is not None:
        unknown = [c for c in mask_classes if classes is None or c not in classes]
        if unknown:
            raise ValueError(f"{where}: mask classes {unknown} are not classes of the data "
                             f"(its thing_classes: {classes})")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(f"{where}: mask fraction {fraction} is outside (0, 1]")


def with_partial_masks(dicts: List[dict], classes: List[str], mask_classes: Optional[List[str]],
                       fraction: Optional[float], seed: int) -> List[dict]:
    """``dicts`` with masks kept only for ``mask_classes`` (None = all) and on a ``fraction``
    of the images chosen with ``seed`` (None = all)."""
    if mask_classes is not None:
        dicts = without_masks_outside_classes(dicts, [classes.index(c) for c in mask_classes])
    if fraction is not None:
        dicts = without_masks_outside_images(dicts, fraction, seed)
    return dicts


def masks_from_config(cfg, dicts: List[dict], classes: List[str]) -> List[dict]:
    """Apply ``DATASETS.TRAIN_MASK_CLASSES`` / ``TRAIN_MASK_FRACTION`` / ``TRAIN_MASK_SEED`` to
    the training ``dicts`` (unchanged with the defaults)."""
    d = cfg.DATASETS
    mask_classes = list(d.TRAIN_MASK_CLASSES) or None
    fraction = d.TRAIN_MASK_FRACTION if d.TRAIN_MASK_FRACTION != 1.0 else None
    if mask_classes is None and fraction is None:
        return dicts
    check_mask_subset("DATASETS.TRAIN_MASK_CLASSES / TRAIN_MASK_FRACTION", classes,
                      mask_classes, fraction)
    return with_partial_masks(dicts, classes, mask_classes, fraction, d.TRAIN_MASK_SEED)


# The 20 Pascal VOC classes by their COCO names: COCO's VOC / non-VOC partition of the
# partially supervised protocol (thesis Sec. 8.4, after Hu et al.'s Mask^X R-CNN).
COCO_VOC_CLASSES = (
    "airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "dining table", "dog", "horse", "motorcycle", "person", "potted plant", "sheep", "couch",
    "train", "tv")
COCO_TRAIN_SOURCES = ("coco_2017_train", "coco_2014_train")


def register_coco_partial_masks() -> None:
    """``<source>_masks_voc`` / ``<source>_masks_nonvoc``: masks only on COCO's VOC / other 60
    classes, for each registered COCO training set of :data:`COCO_TRAIN_SOURCES` (the files
    are read only when a view is used)."""
    registered = set(DatasetCatalog.list())
    for source in COCO_TRAIN_SOURCES:
        if source not in registered:
            continue
        classes = list(MetadataCatalog.get(source).thing_classes)
        register_partial_masks(f"{source}_masks_voc", source, mask_classes=list(COCO_VOC_CLASSES))
        register_partial_masks(f"{source}_masks_nonvoc", source,
                               mask_classes=[c for c in classes if c not in COCO_VOC_CLASSES])


def register_shapes_partial_masks() -> None:
    """The synthetic data's partial-mask views of ``shapes_train`` (module docstring)."""
    for split in FEWSHOT_SPLITS:
        for part, classes in (("base", base_classes), ("novel", novel_classes)):
            register_partial_masks(f"shapes_train_masks_{part}{split}", "shapes_train",
                                   mask_classes=list(classes(split)))
    for percent in SHAPES_MASK_PERCENTS:
        for seed in SHAPES_MASK_SEEDS:
            register_partial_masks(f"shapes_train_masks_{percent}pct_seed{seed}", "shapes_train",
                                   fraction=percent / 100, seed=seed)
