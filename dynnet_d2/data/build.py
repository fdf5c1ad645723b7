"""Training/test data with the checks Detectron2 leaves to asserts: empty datasets and class counts."""
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detectron2.data.build import filter_images_with_only_crowd_annotations

from .errors import EmptyDatasetError


def _load(names: Sequence[str], key: str) -> Dict[str, List[dict]]:
    if not names:
        raise EmptyDatasetError(f"{key} is empty: name at least one registered dataset")
    loaded = {}
    for name in names:
        dicts = DatasetCatalog.get(name)
        if len(dicts) == 0:
            raise EmptyDatasetError(f"dataset {name!r} (in {key}) has no images")
        loaded[name] = dicts
    return loaded


def check_num_classes(cfg, names: Sequence[str], key: str) -> None:
    """Check that the datasets' classes fit ``MODEL.ROI_HEADS.NUM_CLASSES``."""
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    for name in names:
        classes = MetadataCatalog.get(name).get("thing_classes")
        if classes is not None and len(classes) != num_classes:
            raise ValueError(
                f"dataset {name!r} (in {key}) has {len(classes)} classes {list(classes)}, but "
                f"MODEL.ROI_HEADS.NUM_CLASSES={num_classes}; set it to {len(classes)}"
            )


def training_dataset_dicts(cfg) -> List[dict]:
    """``DATASETS.TRAIN`` as Detectron2 would load it, with clear errors when nothing is left."""
    names = cfg.DATASETS.TRAIN
    loaded = _load(names, "DATASETS.TRAIN")
    check_num_classes(cfg, names, "DATASETS.TRAIN")
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    for name, dicts in loaded.items():
        bad = next((a["category_id"] for d in dicts for a in d.get("annotations", [])
                    if not 0 <= a["category_id"] < num_classes), None)
        if bad is not None:
            raise ValueError(
                f"dataset {name!r} has an annotation with category_id {bad} outside "
                f"[0, MODEL.ROI_HEADS.NUM_CLASSES={num_classes})"
            )
    all_dicts = [d for dicts in loaded.values() for d in dicts]
    if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS and not filter_images_with_only_crowd_annotations(all_dicts):
        raise EmptyDatasetError(
            f"DATASETS.TRAIN={list(names)}: no image has a non-crowd annotation, so none is left "
            f"after DATALOADER.FILTER_EMPTY_ANNOTATIONS=True"
        )
    return get_detection_dataset_dicts(
        names,
        filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
        min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
        proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None,
    )


def check_test_datasets(cfg) -> None:
    """Fail early, before training, if a ``DATASETS.TEST`` entry is empty or has the wrong classes.

    An empty ``DATASETS.TEST`` is fine: training without evaluation.
    """
    if not cfg.DATASETS.TEST:
        return
    _load(cfg.DATASETS.TEST, "DATASETS.TEST")
    check_num_classes(cfg, cfg.DATASETS.TEST, "DATASETS.TEST")
