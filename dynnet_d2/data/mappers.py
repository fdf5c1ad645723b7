"""Dataset mappers that fail with the image's file name instead of a bare PIL/OS error, and
that carry partially supervised masks (thesis ch. 8, ShapeProp).

With instance masks on, an annotation without ``"segmentation"`` (e.g. from the partial-mask
views of :mod:`dynnet_d2.data.partial_masks`) gets its box as a placeholder polygon, and every
mapped instance gets ``gt_mask_valid``: False for those placeholders, True for real masks. The
flag starts with ``gt_`` so Detectron2's ROI heads copy it to the sampled proposals, and mask
losses skip the invalid instances (e.g. ShapeProp's partially supervised mask heads). While
Detectron2 maps the annotations the placeholders carry their category plus
:data:`NO_MASK_CLASS_OFFSET`, so the flag stays aligned with whatever instances Detectron2
filters out.
"""
from typing import Any, Dict

from detectron2.data import DatasetMapper
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import BoxMode

from .errors import ImageReadError

# Added to the category of an annotation without a mask while it is mapped (far above any
# class count).
NO_MASK_CLASS_OFFSET = 1 << 20


def with_box_placeholder_mask(annotation: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``annotation`` whose segmentation is its box (XYXY polygon) and whose
    category is marked as having no mask (``+ NO_MASK_CLASS_OFFSET``)."""
    x0, y0, x1, y1 = BoxMode.convert(list(annotation["bbox"]), annotation["bbox_mode"],
                                     BoxMode.XYXY_ABS)
    return {**annotation, "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
            "category_id": annotation["category_id"] + NO_MASK_CLASS_OFFSET}


class CheckedDatasetMapper(DatasetMapper):
    """Detectron2's ``DatasetMapper``; a missing, corrupt or wrongly sized image raises
    :class:`ImageReadError` naming the file; instances without a mask are flagged (see the
    module docstring)."""

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        try:
            return super().__call__(dataset_dict)
        except (OSError, SizeMismatchError) as e:
            raise ImageReadError(
                f"cannot use image {dataset_dict.get('file_name')!r} "
                f"(image_id {dataset_dict.get('image_id')!r}): {type(e).__name__}: {e}"
            ) from e

    def _transform_annotations(self, dataset_dict, transforms, image_shape):
        if self.use_instance_mask:
            dataset_dict["annotations"] = [
                a if "segmentation" in a else with_box_placeholder_mask(a)
                for a in dataset_dict["annotations"]]
        super()._transform_annotations(dataset_dict, transforms, image_shape)
        if self.use_instance_mask:
            instances = dataset_dict["instances"]
            classes = instances.gt_classes
            instances.gt_mask_valid = classes < NO_MASK_CLASS_OFFSET
            instances.gt_classes = classes % NO_MASK_CLASS_OFFSET
