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
==========================================  ==================================================
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
    dicts = DatasetCatalog.get(source)
    if mask_classes is not None:
        classes = list(MetadataCatalog.get(source).thing_classes)
        dicts = without_masks_outside_classes(dicts, [classes.index(c) for c in mask_classes])
    if fraction is not None:
        dicts = without_masks_outside_images(dicts, fraction, seed)
    return dicts


def register_partial_masks(name: str, source: str, *, mask_classes: Optional[List[str]] = None,
                           fraction: Optional[float] = None, seed: int = 0) -> str:
    """Register ``name``: ``source`` with masks kept only for ``mask_classes`` (class names of
    ``source``) and/or on a ``fraction`` in (0, 1] of its images chosen with ``seed``. The
    metadata are ``source``'s plus ``mask_classes``, ``mask_fraction``, ``mask_seed`` and
    ``source_dataset``. Unknown classes or a fraction outside (0, 1] raise ``ValueError``
    naming them."""
    metadata = MetadataCatalog.get(source).as_dict()
    classes = metadata.get("thing_classes")
    if mask_classes is not None:
        unknown = [c for c in mask_classes if classes is None or c not in classes]
        if unknown:
            raise ValueError(f"partial-mask view {name!r}: mask classes {unknown} are not "
                             f"classes of {source!r} (its thing_classes: {classes})")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(f"partial-mask view {name!r}: mask fraction {fraction} is outside "
                         f"(0, 1]")
    metadata.pop("name", None)
    metadata.pop("json_file", None)  # the source's JSON has every mask; the view does not
    metadata.update(mask_classes=None if mask_classes is None else list(mask_classes),
                    mask_fraction=fraction, mask_seed=seed, source_dataset=source)
    return register(name, partial(_load_view, source, None if mask_classes is None
                                  else list(mask_classes), fraction, seed), **metadata)


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
