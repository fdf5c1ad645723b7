"""Datasets: importing this module registers the synthetic shapes datasets (see ``builtin``)."""
from .builtin import register_all_shapes
from .coco_format import register_coco_json_dataset, validate_coco_json
from .errors import DatasetFormatError, EmptyDatasetError, ImageReadError

register_all_shapes()

__all__ = [
    "register_all_shapes", "register_coco_json_dataset", "validate_coco_json",
    "DatasetFormatError", "EmptyDatasetError", "ImageReadError",
]
