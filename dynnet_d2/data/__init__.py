"""Datasets: importing this module registers the synthetic shapes datasets (see ``builtin``)."""
from .builtin import register_all_shapes
from .coco_format import read_coco_json, register_coco_json_dataset
from .errors import DatasetFormatError, EmptyDatasetError, ImageReadError
from .fewshot.real import register_real_fewshot_datasets
from .from_config import register_datasets_from_config
from .pascal_voc import load_voc_folder, register_voc_dataset

register_all_shapes()
register_real_fewshot_datasets()  # VOC/COCO/LVIS few-shot names, for the folders that exist

__all__ = [
    "register_all_shapes", "register_coco_json_dataset", "read_coco_json",
    "register_datasets_from_config", "load_voc_folder", "register_voc_dataset",
    "DatasetFormatError", "EmptyDatasetError", "ImageReadError",
]
