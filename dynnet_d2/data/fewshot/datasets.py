"""K-shot training sets and class views, loaded from split files, and their registration.

Names follow TFA's scheme (brief §3): ``<data>_<split>_{all,novel}<fewshot split>_<K>shot_seed<N>``
(e.g. ``shapes_train_all1_5shot_seed0``), with metadata ``thing_classes`` (the "all" order is
base then novel), ``base_classes``, ``novel_classes``, ``shot`` and ``seed``.

A K-shot set has one record per selected image, holding the annotations of every class that
selected it (fsdet made one record per annotation, so an image picked for two classes appeared
twice, each time with the other class's objects unlabelled). The split files decide which images;
split files are generated on first use (a seed's shots up to the one asked for: the samples of
smaller shots do not depend on larger ones) and then hold exactly K instances per class.

fsdet's published split files list K *images* per class, which can hold more than K instances
of it (fsdet trimmed them to K at load time with unseeded randomness). Such a file is trimmed to
exactly K instances when loaded, deterministically: the instances kept are the first K of a
permutation drawn from :func:`~.sampling.class_rng` (split seed, class name), in the file's
order, the same on every rank and run; the dropped ones stay in their images unlabelled (as in
fsdet), an image left without an instance of the class is not selected by it, and the log says
how many were dropped. A file with fewer than K instances is used as it is, with a warning.
"""
import logging
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..catalog import register
from ..coco_format import coco_dicts_from_json
from ..errors import DatasetFormatError
from .sampling import class_rng, pool_from_dicts, sample_fewshot, shots_up_to
from .split_files import (
    existing_split_file,
    read_coco_split,
    read_voc_split,
    write_voc_split,
)

logger = logging.getLogger(__name__)

# Shots TFA uses on VOC-style data; COCO-style data adds 30.
VOC_SHOTS = (1, 2, 3, 5, 10)
COCO_SHOTS = (1, 2, 3, 5, 10, 30)


def class_view(dicts: Sequence[dict], source_classes: Sequence[str],
               classes: Sequence[str]) -> List[dict]:
    """``dicts`` keeping only annotations of ``classes``, ``category_id`` re-indexed to them.

    Images without a kept annotation stay (test sets need them; training filters them).
    """
    index = {c: i for i, c in enumerate(classes)}
    return [dict(d, annotations=[dict(a, category_id=index[source_classes[a["category_id"]]])
                                 for a in d.get("annotations", ())
                                 if source_classes[a["category_id"]] in index])
            for d in dicts]


def _merge_by_image(selected: Sequence[tuple]) -> List[dict]:
    """One record per image from ``(key, record, annotations)`` triples, in first-seen order."""
    merged: Dict[str, dict] = {}
    for key, record, annotations in selected:
        merged.setdefault(key, dict(record, annotations=[]))["annotations"].extend(annotations)
    return list(merged.values())


def _exactly_k(path: Path, class_name: str, shot: int, seed: int,
               selected: Sequence[tuple]) -> List[tuple]:
    """The ``(key, record, annotations)`` triples of one class's split file with exactly
    ``shot`` instances in all (see the module docstring); fewer are kept with a warning."""
    found = sum(len(annotations) for _, _, annotations in selected)
    if found < shot:
        logger.warning(f"{path}: {found} instances of {class_name!r} in a {shot}-shot split file "
                       f"(used as they are; files written by dynnet_d2 hold exactly {shot})")
    if found <= shot:
        return list(selected)
    kept = set(class_rng(seed, class_name).permutation(found)[:shot].tolist())
    trimmed, index = [], 0
    for key, record, annotations in selected:
        mine = [a for i, a in enumerate(annotations, index) if i in kept]
        index += len(annotations)
        if mine:
            trimmed.append((key, record, mine))
    logger.info(f"{path}: {found} instances of {class_name!r} in its {len(selected)} images; "
                f"kept {shot} (seed {seed}), dropped {found - shot} (they stay unlabelled)")
    return trimmed


def kshot_dicts_from_voc_splits(split_root: str, seed: int, shot: int, classes: Sequence[str],
                                source_dicts: Sequence[dict], source_classes: Sequence[str],
                                source_name: str) -> List[dict]:
    """The K-shot set of ``classes`` from VOC-style split files listing image ids of the source
    dataset ``source_name`` (whose ``category_id`` indexes ``source_classes``), exactly K
    instances per class."""
    by_key = {str(d["image_id"]): d for d in source_dicts}
    selected = []
    for new_id, class_name in enumerate(classes):
        path = existing_split_file("voc", split_root, seed, shot, class_name)
        of_class = []
        for key in read_voc_split(path):
            if key not in by_key:
                raise DatasetFormatError(f"{path}: image {key!r} is not in dataset {source_name!r}")
            record = by_key[key]
            annotations = [dict(a, category_id=new_id) for a in record.get("annotations", ())
                           if source_classes[a["category_id"]] == class_name
                           and not a.get("iscrowd", 0)]
            if not annotations:
                raise DatasetFormatError(f"{path}: image {key!r} of {source_name!r} has no "
                                         f"{class_name!r} instance")
            of_class.append((key, record, annotations))
        selected += _exactly_k(path, class_name, shot, seed, of_class)
    return _merge_by_image(selected)


def kshot_dicts_from_coco_splits(split_root: str, seed: int, shot: int, classes: Sequence[str],
                                 category_ids: Mapping[str, int], image_root: str) -> List[dict]:
    """The K-shot set of ``classes`` from COCO-style split files, exactly K instances per class;
    ``category_ids`` maps each class to its JSON category id, ``image_root`` is where the files'
    ``file_name``s are."""
    selected = []
    for new_id, class_name in enumerate(classes):
        path = existing_split_file("coco", split_root, seed, shot, class_name)
        data = read_coco_split(path)
        wanted = category_ids[class_name]
        others = {a["category_id"] for a in data["annotations"]} - {wanted}
        if others:
            raise DatasetFormatError(f"{path}: annotations of category ids {sorted(others)}; a "
                                     f"split file of {class_name!r} holds only id {wanted}")
        records = coco_dicts_from_json(data, image_root, {wanted: new_id})
        selected += _exactly_k(path, class_name, shot, seed,
                               [(str(r["image_id"]), r, r["annotations"]) for r in records])
    return _merge_by_image(selected)


def ensure_split_files(fmt: str, split_root: str, seed: int, shot: int,
                       classes: Sequence[str], write: Callable[[], None]) -> None:
    """Call ``write()`` unless the ``shot``-shot split files of every class of ``classes`` for
    ``seed`` exist (fsdet's seed-0 files in ``split_root`` count). Sampling is deterministic and
    each file is written atomically, so processes racing to write (DDP ranks) write the same
    bytes and a reader never sees half a file."""
    try:
        for class_name in classes:
            existing_split_file(fmt, split_root, seed, shot, class_name)
    except FileNotFoundError:
        write()


def load_kshot_from_source(split_root: str, all_shots: Sequence[int], source: str,
                           classes: Sequence[str], seed: int, shot: int) -> List[dict]:
    """The ``shot``-shot set of ``classes`` for ``seed``, drawn from the registered dataset
    ``source``: VOC-style split files under ``split_root``, written on first use (for every class
    of ``source``, the shots of ``all_shots`` up to ``shot``; smaller shots' samples do not depend
    on larger ones, so files written later agree with those written before)."""
    source_dicts = DatasetCatalog.get(source)
    source_classes = list(MetadataCatalog.get(source).thing_classes)

    def write() -> None:
        pool = pool_from_dicts(source_dicts, source_classes)
        write_voc_split(split_root, seed, sample_fewshot(pool, source_classes,
                                                         shots_up_to(all_shots, shot), seed,
                                                         source=source))

    ensure_split_files("voc", split_root, seed, shot, source_classes, write)
    return kshot_dicts_from_voc_splits(split_root, seed, shot, classes, source_dicts,
                                       source_classes, source)


def load_joint(load: Callable[..., List[dict]], source: str, base_classes: Sequence[str],
               novel_classes: Sequence[str], seed: int, shot: int) -> List[dict]:
    """Joint training data (the thesis' FRCN+joint baseline): every base-class annotation of
    ``source`` plus the ``shot``-shot set of the novel classes (``load(classes, seed, shot)``),
    in the "all" class order (base then novel), one record per image."""
    base = class_view(DatasetCatalog.get(source), MetadataCatalog.get(source).thing_classes,
                      base_classes)
    offset = len(base_classes)
    novel = [(str(d["image_id"]), d, [dict(a, category_id=a["category_id"] + offset)
                                      for a in d["annotations"]])
             for d in load(tuple(novel_classes), seed, shot)]
    return _merge_by_image([(str(d["image_id"]), d, d["annotations"]) for d in base] + novel)


def register_kshot_datasets(prefix: str, suffix: str, all_classes: Sequence[str],
                            novel_classes: Sequence[str], shots: Sequence[int],
                            seeds: Sequence[int], load: Callable[..., List[dict]],
                            joint_source: Optional[str] = None, **metadata) -> List[str]:
    """Register ``<prefix>_{all,novel}<suffix>_<K>shot_seed<N>``; return the names (``suffix``
    is the few-shot split id, or empty for data with one split).

    ``load(classes, seed, shot)`` returns the K-shot dicts of ``classes``. With
    ``joint_source`` (the registered pool), ``<prefix>_joint<suffix>_<K>shot_seed<N>`` too:
    :func:`load_joint`.
    """
    novel, everything = list(novel_classes), list(all_classes)
    base = [c for c in everything if c not in novel]
    if joint_source and everything != base + novel:
        raise ValueError(f"joint training sets need the 'all' class order base then novel; got "
                         f"{everything}")
    names = []
    for shot in shots:
        for seed in seeds:
            loaders = {"all": partial(load, tuple(everything), seed, shot),
                       "novel": partial(load, tuple(novel), seed, shot)}
            if joint_source:
                loaders["joint"] = partial(load_joint, load, joint_source, tuple(base),
                                           tuple(novel), seed, shot)
            for part, loader in loaders.items():
                names.append(register(
                    f"{prefix}_{part}{suffix}_{shot}shot_seed{seed}", loader,
                    thing_classes=novel if part == "novel" else everything, base_classes=base,
                    novel_classes=novel, shot=shot, seed=seed, **metadata))
    return names
