"""Write the K-shot split files of a registered dataset (``tools/prepare_fewshot_splits.py``).

The pool is the dataset's own annotations; every class of its ``thing_classes`` gets split files
(TFA's files are per class, shared by all base/novel partitions). COCO-style files need the
dataset's COCO JSON (metadata ``json_file``); VOC-style files list ``image_id``s and work for any
registered dataset.
"""
import json
import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from ...utils.env import datasets_root
from .sampling import pool_from_coco, pool_from_dicts, sample_fewshot
from .split_files import FORMATS, write_coco_split, write_voc_split

logger = logging.getLogger(__name__)


def default_format(dataset: str) -> str:
    """``coco`` for a dataset registered from a COCO/LVIS JSON, else ``voc``."""
    metadata = MetadataCatalog.get(dataset)
    return "coco" if metadata.get("json_file") and metadata.get("evaluator_type") in (
        "coco", "lvis") else "voc"


def default_split_dir(name: str, fmt: str) -> Path:
    """``$DYNNET_DATASETS/fewshot/<name>/{vocsplit,cocosplit}`` (``name``: the pool dataset's,
    or ``DATASETS.FEWSHOT.NAME``)."""
    return Path(datasets_root()) / "fewshot" / name / f"{fmt}split"


def check_novel_classes(dataset: str, novel_classes: Sequence[str]) -> None:
    """``ValueError`` naming a novel class the dataset does not have, or no base class left."""
    classes = list(MetadataCatalog.get(dataset).thing_classes)
    unknown = [c for c in novel_classes if c not in classes]
    if unknown:
        raise ValueError(f"novel class(es) {unknown} are not classes of dataset {dataset!r}: "
                         f"{classes}")
    if len(set(novel_classes)) == len(classes):
        raise ValueError(f"every class of {dataset!r} is novel: no base class is left")


def prepare_splits(dataset: str, shots: Sequence[int], seeds: Sequence[int],
                   fmt: Optional[str] = None, out: Optional[str] = None,
                   novel_classes: Sequence[str] = ()) -> Path:
    """Sample and write the split files of ``dataset`` for ``seeds`` x ``shots``; return the
    split directory. Errors (an unknown class, too few instances) come before any file."""
    fmt = fmt or default_format(dataset)
    if fmt not in FORMATS:
        raise ValueError(f"split format {fmt!r}: expected one of {FORMATS}")
    check_novel_classes(dataset, novel_classes)
    metadata = MetadataCatalog.get(dataset)
    classes = list(metadata.thing_classes)
    root = Path(out) if out else default_split_dir(dataset, fmt)
    dicts = DatasetCatalog.get(dataset)  # loads (and for the synthetic data, makes) the dataset
    if fmt == "coco":
        if not metadata.get("json_file"):
            raise ValueError(f"COCO-style split files need the COCO JSON of {dataset!r}, whose "
                             f"metadata has no json_file; use --format voc")
        coco = json.loads(Path(metadata.json_file).read_text())
        category_ids = {classes[i]: cid
                        for cid, i in metadata.thing_dataset_id_to_contiguous_id.items()}
        pool = pool_from_coco(coco, {cid: c for c, cid in category_ids.items()})
    else:
        pool = pool_from_dicts(dicts, classes)
    samples: Dict[int, dict] = {seed: sample_fewshot(pool, classes, shots, seed, source=dataset)
                                for seed in seeds}
    for seed, per_class in samples.items():
        if fmt == "coco":
            write_coco_split(str(root), seed, per_class, coco, category_ids)
        else:
            write_voc_split(str(root), seed, per_class)
    logger.info(f"Wrote {fmt}-style split files of {dataset} for seeds {list(seeds)} and shots "
                f"{list(shots)} to {root}")
    return root
