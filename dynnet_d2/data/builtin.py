"""Register the synthetic "shapes" dataset under TFA-style names (brief §3).

=================================  =====================================================
``shapes_{train,val,test}``        COCO JSON, all 20 classes (canonical order), masks
``shapes_{split}_{base,novel}{f}`` the 15 base / 5 novel classes of few-shot split f in {1,2,3}
``shapes_{split}_all{f}``          all 20 classes ordered base then novel (TFA's convention)
``shapes_voc_{train,val,test,trainval}``  the same images via Pascal VOC XML (VOC evaluator)
``shapes_lvis_{train,val}``        LVIS-v0.5-style long-tail train set; val = the test images
``shapes_train_{all,novel}{f}_{K}shot_seed{N}``  exact K-shot sets of few-shot split f (K in
                                   1, 2, 3, 5, 10; N in 0..29), split files made on first use
``shapes_train_joint{f}_{K}shot_seed{N}``  every base annotation + the novel K-shot set
=================================  =====================================================

The data are generated on first use under ``$DYNNET_DATASETS/shapes`` (default ``./datasets``).
"""
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from detectron2.data.datasets import load_coco_json, load_lvis_json

from . import synthetic
from .catalog import register
from .fewshot import VOC_SHOTS, load_kshot_from_source, register_kshot_datasets
from .pascal_voc import load_voc_folder
from .synthetic import (
    ALL_CLASSES,
    COCO_SPLITS,
    FEWSHOT_SPLITS,
    LVIS_SPLITS,
    all_classes,
    base_classes,
    novel_classes,
)


def ensure_shapes(root: Optional[str] = None) -> Path:
    """The dataset directory; generates the default dataset unless one is there.

    A complete dataset made by the current generator version, of any size (e.g. a smaller one
    made with ``tools/make_synthetic.py --num-train ...``), is used as it is.
    """
    manifest = synthetic.read_manifest(root)
    if manifest and manifest.get("generator_version") == synthetic.GENERATOR_VERSION:
        return synthetic.dataset_dir(root)
    return synthetic.ensure_synthetic(root)


def dataset_id_to_contiguous_id(classes: Sequence[str]) -> Dict[int, int]:
    """JSON category id (1..20, canonical order) of each of ``classes`` -> its index in
    ``classes``."""
    return {ALL_CLASSES.index(c) + 1: i for i, c in enumerate(classes)}


def load_shapes_coco(split: str, classes: Sequence[str], root: Optional[str] = None) -> List[dict]:
    """Dataset dicts of ``split`` keeping only ``classes``; ``category_id`` indexes ``classes``.

    Images without any kept object stay (test sets must keep them; training filters them
    with ``DATALOADER.FILTER_EMPTY_ANNOTATIONS``).
    """
    ensure_shapes(root)
    dicts = load_coco_json(
        str(synthetic.coco_json_path(split, root)), str(synthetic.image_root(root)),
        extra_annotation_keys=["attributes"],
    )
    contiguous = dataset_id_to_contiguous_id(classes)
    for d in dicts:
        d["annotations"] = [
            dict(a, category_id=contiguous[a["category_id"]])
            for a in d["annotations"] if a["category_id"] in contiguous
        ]
    return dicts


def load_shapes_voc(split: str, root: Optional[str] = None) -> List[dict]:
    """The Pascal VOC export of ``split``, read by our VOC folder loader."""
    ensure_shapes(root)
    return load_voc_folder(str(synthetic.voc_dir(root)), split, ALL_CLASSES)


def load_shapes_lvis(split: str, root: Optional[str] = None) -> List[dict]:
    """The LVIS-v0.5-style export of ``split``, read by Detectron2's own LVIS loader."""
    ensure_shapes(root)
    return load_lvis_json(str(synthetic.lvis_json_path(split, root)),
                          str(synthetic.image_root(root)))


SHAPES_SEEDS = range(30)
FEWSHOT_SOURCE = "shapes_train"  # the pool K-shot sets are drawn from


def fewshot_split_root(root: Optional[str] = None) -> Path:
    """Where the K-shot split files of the synthetic data live (VOC-style text files); inside
    the dataset directory, so regenerating the data also discards them."""
    return synthetic.dataset_dir(root) / "fewshot" / "vocsplit"


def load_shapes_kshot(root: Optional[str], classes: Sequence[str], seed: int,
                      shot: int) -> List[dict]:
    """The ``shot``-shot set of ``classes`` for ``seed``, drawn from ``shapes_train``."""
    ensure_shapes(root)
    return load_kshot_from_source(str(fewshot_split_root(root)), VOC_SHOTS, FEWSHOT_SOURCE,
                                  classes, seed, shot)


def _register_coco_view(name: str, split: str, classes: Sequence[str], root, **extra) -> None:
    full = list(classes) == list(ALL_CLASSES)
    register(
        name,
        partial(load_shapes_coco, split, list(classes), root),
        thing_classes=list(classes),
        # Maps the JSON's category ids to our contiguous ids; evaluators map predictions back.
        thing_dataset_id_to_contiguous_id=dataset_id_to_contiguous_id(classes),
        evaluator_type="coco",
        image_root=str(synthetic.image_root(root)),
        # A class subset is converted to COCO JSON by COCOEvaluator itself (only its classes).
        **({"json_file": str(synthetic.coco_json_path(split, root))} if full else {}),
        **extra,
    )


def register_all_shapes(root: Optional[str] = None) -> None:
    """Register every shapes dataset name for the data under ``root`` (default: $DYNNET_DATASETS,
    else ./datasets, made absolute now so metadata paths do not depend on a later working dir)."""
    root = str(Path(root) if root else synthetic.default_root().resolve())
    for split in COCO_SPLITS:
        _register_coco_view(f"shapes_{split}", split, ALL_CLASSES, root)
        for fewshot_split in FEWSHOT_SPLITS:
            fewshot_meta = dict(fewshot_split=fewshot_split,
                                base_classes=base_classes(fewshot_split),
                                novel_classes=novel_classes(fewshot_split))
            for part, classes in (("base", base_classes), ("novel", novel_classes),
                                  ("all", all_classes)):
                _register_coco_view(f"shapes_{split}_{part}{fewshot_split}", split,
                                    classes(fewshot_split), root, **fewshot_meta)
    for fewshot_split in FEWSHOT_SPLITS:
        register_kshot_datasets(
            "shapes_train", str(fewshot_split), all_classes(fewshot_split),
            novel_classes(fewshot_split), VOC_SHOTS, SHAPES_SEEDS, partial(load_shapes_kshot, root),
            joint_source=FEWSHOT_SOURCE, fewshot_split=fewshot_split, evaluator_type="coco",
            image_root=str(synthetic.image_root(root)))
    voc = str(synthetic.voc_dir(root))
    for split in COCO_SPLITS + ("trainval",):
        register(
            f"shapes_voc_{split}", partial(load_shapes_voc, split, root),
            thing_classes=list(ALL_CLASSES), dirname=voc, year=2007, split=split,
            evaluator_type="pascal_voc",
        )
    for split in LVIS_SPLITS:
        register(
            f"shapes_lvis_{split}", partial(load_shapes_lvis, split, root),
            thing_classes=list(ALL_CLASSES), json_file=str(synthetic.lvis_json_path(split, root)),
            image_root=str(synthetic.image_root(root)), evaluator_type="lvis",
        )
