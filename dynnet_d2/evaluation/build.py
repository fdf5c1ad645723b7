"""Pick the evaluator of a dataset from its ``evaluator_type`` metadata."""
import os
from typing import Dict, List, Optional, Tuple

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator, SemSegEvaluator

from ..compat import fix_lvis_numpy2, read_label_png
from .classification import DynnetClassificationEvaluator
from .coco import DynnetCOCOEvaluator
from .lvis import DynnetLVISEvaluator
from .pascal_voc import DynnetPascalVOCEvaluator

EVALUATOR_TYPES = ("coco", "pascal_voc", "lvis", "classification", "sem_seg")


def evaluator_type(dataset_name: str) -> str:
    """The dataset's ``evaluator_type``; ``ValueError`` naming the dataset if there is none we
    can build (checked before training, so evaluation never fails after it)."""
    kind = MetadataCatalog.get(dataset_name).get("evaluator_type")
    if kind not in EVALUATOR_TYPES:
        raise ValueError(
            f"dataset {dataset_name!r} has evaluator_type={kind!r} in its metadata; expected one "
            f"of {EVALUATOR_TYPES} (set it with MetadataCatalog.get(name).set(evaluator_type=...))"
        )
    return kind


def partial_mask_subsets(cfg, dataset_name: str) -> Dict[str, List[str]]:
    """``{"base": classes that had masks in training, "novel": the other classes of
    dataset_name}`` when ``MODEL.MASK_ON`` and a training dataset keeps masks for a class
    subset only (metadata ``mask_classes``, :mod:`dynnet_d2.data.partial_masks`, or
    ``DATASETS.TRAIN_MASK_CLASSES``), else ``{}``."""
    if not cfg.MODEL.MASK_ON:
        return {}
    kept = [MetadataCatalog.get(name).get("mask_classes") for name in cfg.DATASETS.TRAIN]
    kept = [set(k) for k in kept + [list(cfg.DATASETS.TRAIN_MASK_CLASSES) or None]
            if k is not None]
    if not kept:
        return {}
    base = set().union(*kept)
    classes = list(MetadataCatalog.get(dataset_name).get("thing_classes", ()))
    return {"base": [c for c in classes if c in base],
            "novel": [c for c in classes if c not in base]}


def coco_tasks(cfg) -> Optional[Tuple[str, ...]]:
    """``("bbox", "segm")`` for a model with ``MODEL.MASK_ON`` (and no keypoints), so that an
    evaluation without a single detection still reports the ``segm`` metrics (as undefined)
    instead of dropping them: Detectron2 infers the tasks from the predictions. Else None (the
    predictions tell)."""
    if cfg.MODEL.MASK_ON and not cfg.MODEL.KEYPOINT_ON:
        return ("bbox", "segm")
    return None


def build_evaluator(cfg, dataset_name: str,
                    output_folder: Optional[str] = None) -> DatasetEvaluator:
    """COCO / Pascal VOC / LVIS / classification / semantic-segmentation (Detectron2's
    ``SemSegEvaluator``: mIoU, fwIoU, mACC, pACC) evaluator for ``dataset_name`` according to its
    metadata; for a few-shot dataset (metadata ``base_classes`` and ``novel_classes``) each
    detection evaluator also reports ``bAP*`` / ``nAP*`` (:mod:`dynnet_d2.evaluation.fewshot`),
    and a COCO evaluator of a model trained with partial masks the tasks ``segm_novel`` /
    ``segm_base`` (and ``bbox_*``) of :func:`partial_mask_subsets`."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    kind = evaluator_type(dataset_name)
    if kind == "coco":
        # A compiled COCOeval: Detectron2's when built, else faster-coco-eval's.
        return DynnetCOCOEvaluator(dataset_name, tasks=coco_tasks(cfg), output_dir=output_folder,
                                   task_subsets=partial_mask_subsets(cfg, dataset_name))
    if kind == "pascal_voc":
        return DynnetPascalVOCEvaluator(dataset_name)
    if kind == "classification":
        return DynnetClassificationEvaluator(dataset_name)
    if kind == "sem_seg":
        return SemSegEvaluator(dataset_name, output_dir=output_folder,
                               sem_seg_loading_fn=read_label_png)
    fix_lvis_numpy2()
    return DynnetLVISEvaluator(dataset_name, output_dir=output_folder)
