"""Pick Detectron2's evaluator from a dataset's ``evaluator_type`` metadata."""
import os
from typing import Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import (
    COCOEvaluator,
    DatasetEvaluator,
    LVISEvaluator,
    PascalVOCDetectionEvaluator,
)

from ..compat import fix_lvis_numpy2, has_compiled_detectron2

EVALUATOR_TYPES = ("coco", "pascal_voc", "lvis")


def build_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None) -> DatasetEvaluator:
    """COCO / Pascal VOC / LVIS evaluator for ``dataset_name`` according to its metadata."""
    output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type")
    if evaluator_type == "coco":
        # Without detectron2._C the fast COCOeval is absent; say so by asking for the official one.
        return COCOEvaluator(dataset_name, output_dir=output_folder,
                             use_fast_impl=has_compiled_detectron2())
    if evaluator_type == "pascal_voc":
        return PascalVOCDetectionEvaluator(dataset_name)
    if evaluator_type == "lvis":
        fix_lvis_numpy2()
        return LVISEvaluator(dataset_name, output_dir=output_folder)
    raise ValueError(
        f"dataset {dataset_name!r} has evaluator_type={evaluator_type!r} in its metadata; "
        f"expected one of {EVALUATOR_TYPES} (set it with MetadataCatalog.get(name).set(evaluator_type=...))"
    )
