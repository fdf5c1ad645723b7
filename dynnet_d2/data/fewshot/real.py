"""TFA's few-shot datasets on the real Pascal VOC, COCO and LVIS v0.5, under fsdet's names.

:func:`register_real_fewshot_datasets` (called when ``dynnet_d2`` is imported) registers the
names below for the folders of ``$DYNNET_DATASETS`` that exist; it only checks that files and
folders exist, nothing is read until a dataset is loaded. ``{s}`` is the VOC few-shot split
(1, 2, 3), ``{K}`` the shots, ``{N}`` the seed; class facts are in :mod:`.real_metadata`.

==========================================================  ===================================
``voc_{2007,2012}_trainval_{base,all}{s}``                  ``VOC{year}/``, trainval
``voc_2007_test_{base,novel,all}{s}``                       ``VOC2007/``, test (VOC2007 AP)
``voc_0712_trainval``                                       VOC2007 + VOC2012 trainval: the pool
``voc_{2007,2012}_trainval_{all,novel}{s}_{K}shot_seed{N}`` K in 1 2 3 5 10, N in 0..29, from
                                                            ``vocsplit/`` (both VOC folders)
``coco_trainval_{all,base}``, ``coco_test_{all,base,novel}``  ``cocosplit/datasplit/
                                                            {trainvalno5k,5k}.json``
``coco_trainval_{all,novel}_{K}shot_seed{N}``               K in 1 2 3 5 10 30, N in 0..9, from
                                                            ``cocosplit/``
``lvis_v0.5_train_{freq,common,rare}``, ``lvis_v0.5_train_rare_novel``  ``lvis/``, train2017
``lvis_v0.5_train_shots``                                   ``lvissplit/lvis_shots.json``
``lvis_v0.5_val_novel``                                     ``lvis/lvis_v0.5_val.json``
==========================================================  ===================================

K-shot sets are read from fsdet's published split folders (seed 0 directly in ``vocsplit/`` /
``cocosplit/``, seed N in ``seedN/``; VOC files list image paths, read as ids of the VOC2007 +
VOC2012 trainval pool); their K images per class are trimmed to exactly K instances,
deterministically (:mod:`.datasets`). Split files that are missing are sampled on first use by
:mod:`.sampling` (exactly K per class) and written into ``seedN/`` of the same folder.
``lvis_v0.5_train_{freq,common,rare}`` read fsdet's ``lvis/lvis_v0.5_train_<group>.json`` when
present, else are derived in memory from ``lvis_v0.5_train.json`` by the categories'
``frequency`` field, as fsdet's ``split_lvis_annotation.py`` would write them.
"""
import os
from functools import partial
from typing import List, Optional, Sequence, Set

from detectron2.data import MetadataCatalog

from ...utils.env import datasets_root
from ..catalog import register, unregister
from ..coco_format import coco_dicts_from_json, read_coco_json
from ..errors import DatasetFormatError
from ..pascal_voc import load_voc_folder
from .datasets import (
    COCO_SHOTS,
    VOC_SHOTS,
    class_view,
    ensure_split_files,
    kshot_dicts_from_coco_splits,
    load_kshot_from_source,
    register_kshot_datasets,
)
from .real_metadata import (
    COCO_CLASS_IDS,
    COCO_CLASSES,
    LVIS_BASE_CLASSES,
    LVIS_CLASS_IDS,
    LVIS_CLASSES,
    LVIS_FREQUENCIES,
    LVIS_NOVEL_CLASSES,
    VOC_CLASSES,
    VOC_SPLIT_IDS,
    coco_classes,
    fewshot_metadata,
    id_map,
    voc_classes,
)
from .sampling import pool_from_coco, sample_fewshot, shots_up_to
from .split_files import write_coco_split

VOC_SEEDS = range(30)
COCO_SEEDS = range(10)
VOC_POOL = "voc_0712_trainval"  # the pool VOC K-shot sets are drawn from, as fsdet's
# Names registered by the last call of register_real_fewshot_datasets.
_REGISTERED: Set[str] = set()


# ---- Pascal VOC ----

def _load_voc_view(folder: str, split: str, classes: Sequence[str]) -> List[dict]:
    return class_view(load_voc_folder(folder, split, VOC_CLASSES), VOC_CLASSES, classes)


def _load_voc_pool(folders: Sequence[str]) -> List[dict]:
    return [d for folder in folders for d in load_voc_folder(folder, "trainval", VOC_CLASSES)]


def _register_voc(root: str) -> List[str]:
    names, trainval = [], []
    for year, split, parts in ((2007, "trainval", ("base", "all")),
                               (2007, "test", ("base", "novel", "all")),
                               (2012, "trainval", ("base", "all"))):
        folder = os.path.join(root, f"VOC{year}")
        if not (os.path.isdir(os.path.join(folder, "Annotations"))
                and os.path.isfile(os.path.join(folder, "ImageSets", "Main", f"{split}.txt"))):
            continue
        if split == "trainval":
            trainval.append(folder)
        for sid in VOC_SPLIT_IDS:
            for part in parts:
                classes = voc_classes(part, sid)
                names.append(register(
                    f"voc_{year}_{split}_{part}{sid}",
                    partial(_load_voc_view, folder, split, tuple(classes)),
                    **fewshot_metadata(classes, voc_classes("base", sid),
                                       voc_classes("novel", sid)),
                    evaluator_type="pascal_voc", dirname=folder, split=split, year=year))
    if len(trainval) < 2:  # fsdet samples from both years' trainval
        return names
    names.append(register(VOC_POOL, partial(_load_voc_pool, tuple(trainval)),
                           thing_classes=list(VOC_CLASSES), evaluator_type="pascal_voc",
                           year=2007))
    load = partial(load_kshot_from_source, os.path.join(root, "vocsplit"), VOC_SHOTS, VOC_POOL)
    for year in (2007, 2012):
        for sid in VOC_SPLIT_IDS:
            names += register_kshot_datasets(
                f"voc_{year}_trainval", str(sid), voc_classes("all", sid),
                voc_classes("novel", sid), VOC_SHOTS, VOC_SEEDS, load,
                evaluator_type="pascal_voc", year=year)
    return names


# ---- COCO ----

def _load_coco_view(json_file: str, image_root: str, classes: Sequence[str]) -> List[dict]:
    """The images of ``json_file`` with the annotations of ``classes`` (images without any
    stay: test sets need them)."""
    data = read_coco_json(json_file)
    ids = id_map(classes, COCO_CLASS_IDS)
    kept = dict(data, annotations=[a for a in data["annotations"] if a["category_id"] in ids])
    return coco_dicts_from_json(kept, image_root, ids)


def _load_coco_kshot(split_root: str, json_file: str, image_root: str, classes: Sequence[str],
                     seed: int, shot: int) -> List[dict]:
    """The K-shot set of ``classes`` from COCO-style split files; when a class has none, the
    files of every class for ``seed`` (shots up to ``shot``) are sampled from ``json_file``."""

    def write() -> None:
        if not os.path.isfile(json_file):
            raise FileNotFoundError(
                f"{shot}-shot COCO split files of seed {seed} are missing in {split_root!r} and "
                f"{json_file!r}, the pool to sample them from, does not exist")
        coco = read_coco_json(json_file)
        pool = pool_from_coco(coco, {i: c for c, i in COCO_CLASS_IDS.items()})
        samples = sample_fewshot(pool, COCO_CLASSES, shots_up_to(COCO_SHOTS, shot), seed,
                                 source=json_file)
        write_coco_split(split_root, seed, samples, coco, COCO_CLASS_IDS)

    ensure_split_files("coco", split_root, seed, shot, classes, write)
    return kshot_dicts_from_coco_splits(split_root, seed, shot, classes, COCO_CLASS_IDS,
                                        image_root)


def _register_coco(root: str) -> List[str]:
    names = []
    split_root = os.path.join(root, "cocosplit")
    trainval_json = os.path.join(split_root, "datasplit", "trainvalno5k.json")
    trainval_images = os.path.join(root, "coco", "trainval2014")
    for split, json_file, image_root, parts in (
            ("trainval", trainval_json, trainval_images, ("all", "base")),
            ("test", os.path.join(split_root, "datasplit", "5k.json"),
             os.path.join(root, "coco", "val2014"), ("all", "base", "novel"))):
        if not (os.path.isfile(json_file) and os.path.isdir(image_root)):
            continue
        for part in parts:
            classes = coco_classes(part)
            # The JSON holds the 80 classes: the evaluator may read it for "all" only.
            json_metadata = {"json_file": json_file} if part == "all" else {}
            names.append(register(
                f"coco_{split}_{part}", partial(_load_coco_view, json_file, image_root,
                                                tuple(classes)),
                **fewshot_metadata(classes, coco_classes("base"), coco_classes("novel")),
                thing_dataset_id_to_contiguous_id=id_map(classes, COCO_CLASS_IDS),
                evaluator_type="coco", image_root=image_root, **json_metadata))
    if os.path.isdir(split_root) and os.path.isdir(trainval_images):
        kshot = register_kshot_datasets(
            "coco_trainval", "", coco_classes("all"), coco_classes("novel"), COCO_SHOTS,
            COCO_SEEDS, partial(_load_coco_kshot, split_root, trainval_json, trainval_images),
            evaluator_type="coco", image_root=trainval_images)
        for name in kshot:
            metadata = MetadataCatalog.get(name)
            metadata.set(thing_dataset_id_to_contiguous_id=id_map(metadata.thing_classes,
                                                                  COCO_CLASS_IDS))
        names += kshot
    return names


# ---- LVIS v0.5 ----

def _lvis_image_file(image_root: str, image: dict) -> str:
    """LVIS v0.5 names COCO 2014 files (``COCO_val2014_000000397133.jpg``); in COCO 2017's
    folders the file is ``000000397133.jpg``."""
    name = os.path.basename(image.get("coco_url") or image["file_name"])
    return os.path.join(image_root, name.rsplit("_", 1)[-1] if name.startswith("COCO_") else name)


def _load_lvis(json_file: str, image_root: str, classes: Sequence[str],
               frequency: Optional[str] = None) -> List[dict]:
    """The images and annotations of ``classes`` in ``json_file``; with ``frequency``, only the
    annotations of the categories of that ``frequency`` and the images that have one (what
    fsdet's ``split_lvis_annotation.py`` writes)."""
    data = read_coco_json(json_file)
    if frequency is not None:
        group = {c["id"] for c in data["categories"] if c.get("frequency") == frequency}
        if not group:
            raise DatasetFormatError(f"{json_file}: no category has frequency {frequency!r}; "
                                     f"expected LVIS v0.5 categories with 'f', 'c' or 'r'")
        annotations = [a for a in data["annotations"] if a["category_id"] in group]
        with_group = {a["image_id"] for a in annotations}
        data = dict(data, annotations=annotations,
                    images=[im for im in data["images"] if im["id"] in with_group])
    ids = id_map(classes, LVIS_CLASS_IDS)
    kept = dict(data, annotations=[a for a in data["annotations"] if a["category_id"] in ids])
    images = {im["id"]: im for im in data["images"]}
    records = coco_dicts_from_json(kept, image_root, ids)
    for record in records:
        image = images[record["image_id"]]
        record["file_name"] = _lvis_image_file(image_root, image)
        record["not_exhaustive_category_ids"] = image.get("not_exhaustive_category_ids", [])
        record["neg_category_ids"] = image.get("neg_category_ids", [])
    return records


def _register_lvis(root: str) -> List[str]:
    lvis_dir = os.path.join(root, "lvis")
    train_images = os.path.join(root, "coco", "train2017")
    val_images = os.path.join(root, "coco", "val2017")
    train_json = os.path.join(lvis_dir, "lvis_v0.5_train.json")
    val_json = os.path.join(lvis_dir, "lvis_v0.5_val.json")

    def register_view(name, json_file, image_root, classes, frequency=None):
        return register(
            name, partial(_load_lvis, json_file, image_root, tuple(classes), frequency),
            **fewshot_metadata(classes, LVIS_BASE_CLASSES, LVIS_NOVEL_CLASSES),
            thing_dataset_id_to_contiguous_id=id_map(classes, LVIS_CLASS_IDS),
            evaluator_type="lvis", json_file=json_file, image_root=image_root)

    names = []
    if os.path.isdir(train_images):
        for frequency, group in LVIS_FREQUENCIES:
            group_json = os.path.join(lvis_dir, f"lvis_v0.5_train_{group}.json")
            if os.path.isfile(group_json):
                json_file, derive = group_json, None
            elif os.path.isfile(train_json):
                json_file, derive = train_json, frequency
            else:
                continue
            names.append(register_view(f"lvis_v0.5_train_{group}", json_file, train_images,
                                       LVIS_CLASSES, derive))
            if group == "rare":
                names.append(register_view("lvis_v0.5_train_rare_novel", json_file,
                                           train_images, LVIS_NOVEL_CLASSES, derive))
        shots_json = os.path.join(root, "lvissplit", "lvis_shots.json")
        if os.path.isfile(shots_json):
            names.append(register_view("lvis_v0.5_train_shots", shots_json, train_images,
                                       LVIS_CLASSES))
    if os.path.isdir(val_images) and os.path.isfile(val_json):
        names.append(register_view("lvis_v0.5_val_novel", val_json, val_images,
                                   LVIS_NOVEL_CLASSES))
    return names


def register_real_fewshot_datasets(root: Optional[str] = None) -> List[str]:
    """Register the names of the module docstring for the folders of ``root`` (default
    ``$DYNNET_DATASETS``) that exist; return them. The names a previous call registered are
    removed first, so the catalog reflects ``root``."""
    for name in _REGISTERED:
        unregister(name)
    _REGISTERED.clear()
    root = os.path.abspath(root or datasets_root())
    names = _register_voc(root) + _register_coco(root) + _register_lvis(root)
    _REGISTERED.update(names)
    return names
