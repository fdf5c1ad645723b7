"""Pick the evaluator of a dataset from its ``evaluator_type`` metadata."""
import os
from typing import Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator

from ..compat import fix_lvis_numpy2
from .classification import ClassificationEvaluator
from .coco import DynnetCOCOEvaluator
from .lvis import DynnetLVISEvaluator
from .pascal_voc import VOCDetectionEvaluator

EVALUATOR_TYPES = ("coco", "pascal_voc", "lvis", "classification")


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


def build_evaluator(cfg, dataset_name: str,
                    output_folder: Optional[str] = None) -> DatasetEvaluator:
    """COCO / Pascal VOC / LVIS / classification evaluator for ``dataset_name`` according to its
    metadata; for a few-shot dataset (metadata ``base_classes`` and ``novel_classes``) each
    detection evaluator also reports ``bAP*`` / ``nAP*`` (:mod:`dynnet_d2.evaluation.fewshot`)."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    kind = evaluator_type(dataset_name)
    if kind == "coco":
        # A compiled COCOeval: Detectron2's when built, else faster-coco-eval's.
        return DynnetCOCOEvaluator(dataset_name, output_dir=output_folder)
    if kind == "pascal_voc":
        return VOCDetectionEvaluator(dataset_name)
    if kind == "classification":
        return ClassificationEvaluator(dataset_name)
    fix_lvis_numpy2()
    return DynnetLVISEvaluator(dataset_name, output_dir=output_folder)
