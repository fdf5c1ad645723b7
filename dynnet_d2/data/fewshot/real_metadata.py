"""Class facts of TFA's few-shot benchmarks on Pascal VOC, COCO and LVIS v0.5 (thesis ch. 7).

Constants only (no file is read), as fsdet's ``builtin_meta.py`` has them:

* Pascal VOC: Detectron2's 20 classes; three base/novel splits (fsdet's
  ``PASCAL_VOC_NOVEL_CATEGORIES``): the 5 novel classes of each split, the 15 others are base,
  both in VOC order. The "all" order is base then novel.
* COCO: Detectron2's 80 thing classes; the 20 novel ones are the VOC classes (COCO ids below),
  the other 60 are base, both in COCO id order. The "all" order is base then novel, with a
  ``thing_dataset_id_to_contiguous_id`` map for the evaluator.
* LVIS v0.5: Detectron2's 1230 categories (``synonyms[0]`` names); novel = rare (``r``),
  base = frequent and common (``f``, ``c``). The class order is LVIS's id order, as
  Detectron2's ``lvis_v0.5_{train,val}`` and fsdet have it: fsdet's LVIS configs test on
  Detectron2's ``lvis_v0.5_val``, whose predictions are mapped back by that order, so a model
  trained on classes in another order would be scored against the wrong categories.
"""
from typing import Dict, List, Sequence

from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from detectron2.data.datasets.lvis_v0_5_categories import LVIS_CATEGORIES
from detectron2.data.datasets.pascal_voc import CLASS_NAMES as VOC_CLASSES

VOC_SPLIT_IDS = (1, 2, 3)
VOC_NOVEL_CLASSES = {
    1: ("bird", "bus", "cow", "motorbike", "sofa"),
    2: ("aeroplane", "bottle", "cow", "horse", "sofa"),
    3: ("boat", "cat", "motorbike", "sheep", "sofa"),
}

# COCO ids of the 20 novel COCO classes: the Pascal VOC classes.
COCO_NOVEL_IDS = (1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72)
_COCO_THINGS = [c for c in COCO_CATEGORIES if c["isthing"]]
COCO_CLASS_IDS: Dict[str, int] = {c["name"]: c["id"] for c in _COCO_THINGS}
COCO_CLASSES = tuple(c["name"] for c in _COCO_THINGS)
COCO_NOVEL_CLASSES = tuple(c["name"] for c in _COCO_THINGS if c["id"] in COCO_NOVEL_IDS)
COCO_BASE_CLASSES = tuple(c for c in COCO_CLASSES if c not in COCO_NOVEL_CLASSES)

_LVIS_BY_ID = sorted(LVIS_CATEGORIES, key=lambda c: c["id"])
LVIS_CLASS_IDS: Dict[str, int] = {c["synonyms"][0]: c["id"] for c in _LVIS_BY_ID}
LVIS_CLASSES = tuple(LVIS_CLASS_IDS)
# LVIS's frequency groups and fsdet's names of their train sets.
LVIS_FREQUENCIES = (("f", "freq"), ("c", "common"), ("r", "rare"))
LVIS_NOVEL_CLASSES = tuple(c["synonyms"][0] for c in _LVIS_BY_ID if c["frequency"] == "r")
LVIS_BASE_CLASSES = tuple(c for c in LVIS_CLASSES if c not in set(LVIS_NOVEL_CLASSES))


def voc_classes(part: str, split_id: int) -> List[str]:
    """The classes of ``part`` ("base", "novel" or "all") of VOC few-shot split ``split_id``."""
    novel = list(VOC_NOVEL_CLASSES[split_id])
    base = [c for c in VOC_CLASSES if c not in novel]
    return {"base": base, "novel": novel, "all": base + novel}[part]


def coco_classes(part: str) -> List[str]:
    """The classes of ``part`` ("base", "novel" or "all": base then novel) of COCO."""
    base, novel = list(COCO_BASE_CLASSES), list(COCO_NOVEL_CLASSES)
    return {"base": base, "novel": novel, "all": base + novel}[part]


def id_map(classes: Sequence[str], class_ids: Dict[str, int]) -> Dict[int, int]:
    """``thing_dataset_id_to_contiguous_id`` of ``classes``: JSON category id -> index."""
    return {class_ids[c]: i for i, c in enumerate(classes)}


def fewshot_metadata(classes: Sequence[str], base: Sequence[str],
                     novel: Sequence[str]) -> Dict[str, List[str]]:
    """``thing_classes``, ``base_classes`` and ``novel_classes`` of a view."""
    return {"thing_classes": list(classes), "base_classes": list(base),
            "novel_classes": list(novel)}

