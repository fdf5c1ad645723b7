"""Your own few-shot data, declared in the config (``DATASETS.FEWSHOT``), no code edits.

``DATASETS.FEWSHOT.TRAIN`` / ``TEST`` name registered datasets (e.g. declared with
``DATASETS.COCO_JSON_DATASETS`` or ``DATASETS.VOC_DATASETS``) that share their classes;
``NOVEL_CLASSES`` names the novel ones. With ``NAME`` = ``mydata`` this registers:

* ``mydata_{train,test}_{all,base,novel}``: class views (the "all" order is base then novel),
  with ``base_classes``/``novel_classes`` metadata, so ``mydata_test_all`` reports bAP/nAP;
* ``mydata_train_{all,novel}_<K>shot_seed<N>`` for K in ``SHOTS`` and N < ``SEEDS``: exact
  K-shot sets drawn from TRAIN, their split files (VOC style, image ids) written on first use
  into ``SPLIT_DIR``; ``mydata_train_joint_<K>shot_seed<N>``: TRAIN's base annotations plus the
  novel K-shot set (joint training).
"""
from functools import partial
from typing import Dict, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..catalog import register
from .datasets import class_view, load_kshot_from_source, register_kshot_datasets
from .prepare import default_split_dir

# NAME -> the DATASETS.FEWSHOT values it was registered from.
_REGISTERED: Dict[str, str] = {}
# Metadata of a source dataset that its views keep (the VOC evaluator reads year).
_KEPT_METADATA = ("evaluator_type", "year", "dirname", "split", "image_root")


def _load_view(source: str, classes: Sequence[str]):
    return class_view(DatasetCatalog.get(source), MetadataCatalog.get(source).thing_classes,
                      classes)


def _check(node) -> None:
    """``ValueError`` naming the key and value for anything that cannot work."""
    for key in ("TRAIN", "TEST"):
        if node[key] not in DatasetCatalog.list():
            raise ValueError(f"DATASETS.FEWSHOT.{key}={node[key]!r} is not a registered dataset; "
                             f"declare it in DATASETS.COCO_JSON_DATASETS or VOC_DATASETS")
    classes = list(MetadataCatalog.get(node.TRAIN).thing_classes)
    test_classes = list(MetadataCatalog.get(node.TEST).thing_classes)
    if sorted(classes) != sorted(test_classes):
        raise ValueError(f"DATASETS.FEWSHOT.TRAIN {node.TRAIN!r} has classes {classes} but TEST "
                         f"{node.TEST!r} has {test_classes}; they must be the same")
    unknown = [c for c in node.NOVEL_CLASSES if c not in classes]
    if unknown or not node.NOVEL_CLASSES:
        raise ValueError(f"DATASETS.FEWSHOT.NOVEL_CLASSES={list(node.NOVEL_CLASSES)}: "
                         + (f"{unknown} are not classes of {node.TRAIN!r} ({classes})" if unknown
                            else "name at least one novel class"))
    if len(set(node.NOVEL_CLASSES)) == len(classes):
        raise ValueError(f"DATASETS.FEWSHOT.NOVEL_CLASSES names every class of {node.TRAIN!r}: "
                         f"no base class is left")
    if not node.SHOTS or min(node.SHOTS) < 1 or node.SEEDS < 1:
        raise ValueError(f"DATASETS.FEWSHOT.SHOTS={list(node.SHOTS)} / SEEDS={node.SEEDS}: "
                         f"expected positive shots and at least one seed")


def register_fewshot_from_config(cfg) -> None:
    """Register the datasets ``DATASETS.FEWSHOT`` declares (nothing when its NAME is empty;
    the same values as before are not registered again)."""
    node = cfg.DATASETS.FEWSHOT
    if not node.NAME or _REGISTERED.get(node.NAME) == node.dump():
        return
    _check(node)
    source_classes = list(MetadataCatalog.get(node.TRAIN).thing_classes)
    novel = [c for c in source_classes if c in set(node.NOVEL_CLASSES)]
    base = [c for c in source_classes if c not in set(novel)]
    for split, source in (("train", node.TRAIN), ("test", node.TEST)):
        metadata = MetadataCatalog.get(source).as_dict()
        kept = {k: v for k, v in metadata.items() if k in _KEPT_METADATA}
        for part, classes in (("all", base + novel), ("base", base), ("novel", novel)):
            register(f"{node.NAME}_{split}_{part}", partial(_load_view, source, tuple(classes)),
                     thing_classes=classes, base_classes=base, novel_classes=novel, **kept)
    split_root = node.SPLIT_DIR or str(default_split_dir(node.NAME, "voc"))
    register_kshot_datasets(
        f"{node.NAME}_train", "", base + novel, novel, node.SHOTS, range(node.SEEDS),
        partial(load_kshot_from_source, split_root, tuple(node.SHOTS), node.TRAIN),
        joint_source=node.TRAIN,
        evaluator_type=MetadataCatalog.get(node.TRAIN).get("evaluator_type"))
    _REGISTERED[node.NAME] = node.dump()
