"""Training and test data with every check done before training starts (and before --eval-only).

Detectron2 leaves these to asserts or to a crash hours later: an unknown or empty dataset, a
class count that does not fit the model (its caller passes the config key that holds it: the
meta-architecture's, :mod:`dynnet_d2.modeling.meta_arch`), category ids out of range, boxes
that are not numbers, ``MODEL.MASK_ON`` on data without masks, and images that are missing,
unreadable or not the size their annotation says (``DATASETS.CHECK_IMAGES``).
"""
import difflib
import itertools
import math
import re
from typing import Dict, Iterable, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.build import (
    filter_images_with_few_keypoints,
    filter_images_with_only_crowd_annotations,
    load_proposals_into_dataset,
    print_instances_class_histogram,
)
from detectron2.data.detection_utils import check_metadata_consistency
from detectron2.utils import comm

from ..config import config_value
from .errors import DatasetFormatError, EmptyDatasetError, UnknownDatasetError
from .image_check import find_image_problems, raise_for_image_problems
from .partial_masks import masks_from_config

FEWSHOT_NAME = re.compile(r"^(?P<base>.+)_(?P<shot>\d+)shot_seed(?P<seed>\d+)$")


def _ranges(values: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    values, parts = sorted(set(values)), []
    for value in values:
        if parts and value == parts[-1][1] + 1:
            parts[-1][1] = value
        else:
            parts.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def unknown_dataset_message(name: str, key: str, registered: Sequence[str]) -> str:
    """One line: ``name`` (in config ``key``) is not registered, the closest registered names,
    and for a few-shot name (``<set>_<K>shot_seed<N>``) the shots and seeds registered for its
    set."""
    message = f"{key}: dataset {name!r} is not registered"
    fewshot = FEWSHOT_NAME.match(name)
    if fewshot:
        found = [m for m in map(FEWSHOT_NAME.match, registered)
                 if m and m["base"] == fewshot["base"]]
        if found:
            message += (f"; {fewshot['base']} has K-shot sets for shots "
                        f"{_ranges(int(m['shot']) for m in found)} and seeds "
                        f"{_ranges(int(m['seed']) for m in found)}")
    close = difflib.get_close_matches(name, registered, n=3, cutoff=0.6)
    if close:
        message += f"; closest registered names: {', '.join(close)}"
    return message + " (declare your own data with DATASETS.COCO_JSON_DATASETS / VOC_DATASETS)"


def check_dataset_names(cfg) -> None:
    """Every name of ``DATASETS.TRAIN`` and ``DATASETS.TEST`` is registered, else an
    :class:`UnknownDatasetError` of one line (:func:`unknown_dataset_message`); run before the
    model is built."""
    registered = DatasetCatalog.list()
    for key in ("DATASETS.TRAIN", "DATASETS.TEST"):
        for name in config_value(cfg, key):
            if name not in DatasetCatalog:
                raise UnknownDatasetError(unknown_dataset_message(name, key, registered))


def load_datasets(names: Sequence[str], key: str) -> Dict[str, List[dict]]:
    """The dataset dicts of each of ``names`` (the value of config ``key``); none may be empty."""
    if not names:
        raise EmptyDatasetError(f"{key} is empty: name at least one registered dataset")
    loaded = {}
    for name in names:
        dicts = DatasetCatalog.get(name)
        if len(dicts) == 0:
            raise EmptyDatasetError(f"dataset {name!r} (in {key}) has no images")
        loaded[name] = dicts
    return loaded


def check_num_classes(cfg, names: Sequence[str], key: str, count_key: Optional[str],
                      class_names_metadata: str = "thing_classes") -> None:
    """Check that the datasets' classes (metadata ``class_names_metadata``) fit the class count
    in config ``count_key`` (None: the model has no classes)."""
    if count_key is None:
        return
    num_classes = config_value(cfg, count_key)
    for name in names:
        classes = MetadataCatalog.get(name).get(class_names_metadata)
        if classes is not None and len(classes) != num_classes:
            raise ValueError(
                f"dataset {name!r} (in {key}) has {len(classes)} classes {list(classes)}, but "
                f"{count_key}={num_classes} (the class count of MODEL.META_ARCHITECTURE="
                f"{cfg.MODEL.META_ARCHITECTURE}); set it to {len(classes)}"
            )


def is_box(value) -> bool:
    """True when ``value`` is a list or tuple of four finite numbers (booleans are not numbers)."""
    return isinstance(value, (list, tuple)) and len(value) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)


def check_annotations(cfg, loaded: Dict[str, List[dict]], count_key: Optional[str]) -> None:
    """Category ids (and classification labels) within the class count in ``count_key`` and
    boxes of four finite numbers, in every dataset."""
    num_classes = config_value(cfg, count_key) if count_key else None
    for name, dicts in loaded.items():
        for record in dicts:
            label = record.get("label")
            if label is not None and num_classes is not None and not 0 <= label < num_classes:
                raise ValueError(f"dataset {name!r}, image {record.get('image_id')!r}: label "
                                 f"{label} outside [0, {count_key}={num_classes})")
            for i, ann in enumerate(record.get("annotations", ())):
                where = (f"dataset {name!r}, image {record.get('file_name')!r}, annotation "
                         f"{ann['id'] if 'id' in ann else i}")
                bbox = ann.get("bbox")
                if not is_box(bbox):
                    raise DatasetFormatError(f"{where}: bbox {bbox!r} is not four finite numbers")
                if num_classes is not None and not 0 <= ann["category_id"] < num_classes:
                    raise ValueError(f"{where}: category_id {ann['category_id']} outside "
                                     f"[0, {count_key}={num_classes})")


def check_masks(cfg, loaded: Dict[str, List[dict]]) -> None:
    """With ``MODEL.MASK_ON``, every dataset must have some instance segmentation."""
    if not cfg.MODEL.MASK_ON:
        return
    for name, dicts in loaded.items():
        if not any("segmentation" in a for d in dicts for a in d.get("annotations", ())):
            raise DatasetFormatError(
                f"dataset {name!r} has no segmentation (no annotation has a mask); "
                f"set MODEL.MASK_ON False, or use a dataset with masks"
            )


def check_record_keys(cfg, loaded: Dict[str, List[dict]], key: str,
                      record_keys: Sequence[str]) -> None:
    """Every record of every dataset has each of ``record_keys`` (what the meta-architecture
    trains on, e.g. a semantic segmentor's ``sem_seg_file_name``)."""
    for name, dicts in loaded.items():
        for record in dicts:
            missing = [k for k in record_keys if k not in record]
            if missing:
                raise DatasetFormatError(
                    f"dataset {name!r} (in {key}), image {record.get('file_name')!r}: no "
                    f"{missing}, which MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE} "
                    f"trains on (a semantic segmentor needs a label map per image, e.g. "
                    f"shapes_sem_train, whose maps are made from the instance masks)")


def check_images(cfg, loaded: Dict[str, List[dict]], key: str) -> None:
    """Every image exists, is readable and has its recorded size (``DATASETS.CHECK_IMAGES``).

    Under DDP each process checks a share of the images and all of them raise the same error.
    """
    if not cfg.DATASETS.CHECK_IMAGES:
        return
    rank, world = comm.get_rank(), comm.get_world_size()
    problems = []
    for name, dicts in loaded.items():
        problems += find_image_problems(dicts[rank::world], description=f"images of {name}")
    if world > 1:
        problems = sorted(p for share in comm.all_gather(problems) for p in share)
    raise_for_image_problems(problems, f"{key}={list(loaded)}")


def check_datasets(cfg, loaded: Dict[str, List[dict]], key: str, count_key: Optional[str],
                   class_names_metadata: str = "thing_classes") -> None:
    """Every check above on the datasets of config ``key`` (``count_key``: the config key of the
    model's class count, None for none; ``class_names_metadata``: the metadata key of the class
    names it counts)."""
    check_num_classes(cfg, list(loaded), key, count_key, class_names_metadata)
    check_annotations(cfg, loaded, count_key)
    check_masks(cfg, loaded)
    check_images(cfg, loaded, key)


def training_dataset_dicts(cfg, class_count_key: Optional[str] = None,
                           class_names_metadata: str = "thing_classes",
                           record_keys: Sequence[str] = ()) -> List[dict]:
    """``DATASETS.TRAIN`` loaded once, checked (its classes, metadata ``class_names_metadata``,
    against the model's class count in config ``class_count_key``, when given; each record has
    ``record_keys``), then prepared as Detectron2's loader does.

    The preparation after loading follows ``detectron2.data.build.get_detection_dataset_dicts``
    (Detectron2 main, 2024): proposals, crowd-only filtering, keypoint filtering, the class
    histogram; that function takes names and would load every dataset a second time.
    Classification records (a ``label``, no ``annotations``) skip the annotation filters.
    """
    names = list(cfg.DATASETS.TRAIN)
    loaded = load_datasets(names, "DATASETS.TRAIN")
    check_datasets(cfg, loaded, "DATASETS.TRAIN", class_count_key, class_names_metadata)
    check_record_keys(cfg, loaded, "DATASETS.TRAIN", record_keys)
    per_dataset = [loaded[name] for name in names]
    if cfg.MODEL.LOAD_PROPOSALS:
        per_dataset = [load_proposals_into_dataset(dicts, proposal_file) for dicts, proposal_file
                       in zip(per_dataset, cfg.DATASETS.PROPOSAL_FILES_TRAIN)]
    dicts = list(itertools.chain.from_iterable(per_dataset))
    dicts = masks_from_config(cfg, dicts, MetadataCatalog.get(names[0]).get("thing_classes"))
    if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS and any("annotations" in d for d in dicts):
        dicts = filter_images_with_only_crowd_annotations(dicts)
        if not dicts:
            raise EmptyDatasetError(
                f"DATASETS.TRAIN={names}: no image has a non-crowd annotation, so none is left "
                f"after DATALOADER.FILTER_EMPTY_ANNOTATIONS=True"
            )
    if cfg.MODEL.KEYPOINT_ON and cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE > 0:
        dicts = filter_images_with_few_keypoints(
            dicts, cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE
        )
        if not dicts:
            raise EmptyDatasetError(
                f"DATASETS.TRAIN={names}: no image is left after filtering images with fewer than "
                f"MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE keypoints"
            )
    classes = MetadataCatalog.get(names[0]).get("thing_classes")
    if classes is not None:
        check_metadata_consistency("thing_classes", names)
        if "annotations" in dicts[0]:
            print_instances_class_histogram(dicts, classes)
    return dicts


def check_test_datasets(cfg, class_count_key: Optional[str], *, required: bool,
                        class_names_metadata: str = "thing_classes") -> None:
    """Load and check every ``DATASETS.TEST`` entry before training or evaluation (its classes,
    metadata ``class_names_metadata``, against the model's class count in config
    ``class_count_key``).

    An empty ``DATASETS.TEST`` is an error when ``required`` (``--eval-only``); otherwise it
    means training without evaluation.
    """
    if not cfg.DATASETS.TEST:
        if required:
            raise EmptyDatasetError("DATASETS.TEST is empty: nothing to evaluate; name the "
                                    "registered dataset(s) to evaluate on")
        return
    check_datasets(cfg, load_datasets(cfg.DATASETS.TEST, "DATASETS.TEST"), "DATASETS.TEST",
                   class_count_key, class_names_metadata)
