"""Datasets shared by every method: importing this module registers the synthetic shapes
datasets (see ``builtin``), their few-shot sets (``fewshot``), partial-mask views
(``partial_masks``), their semantic-segmentation views (``semantic``) and the image
classification datasets (see ``classification_builtin``); user
data from the config (``from_config``), mappers, loaders and the checks done before training.

May import: utils, config, compat; never evaluation, modeling, engine, a method or experiments.
"""
from .builtin import register_all_shapes
from .classification import (
    ClassificationMapper,
    build_classification_test_loader,
    build_classification_train_loader,
)
from .classification_builtin import register_all_classification
from .coco_format import read_coco_json, register_coco_json_dataset
from .errors import DatasetFormatError, EmptyDatasetError, ImageReadError, UnknownDatasetError
from .fewshot.real import register_real_fewshot_datasets
from .from_config import register_datasets_from_config
from .partial_masks import (
    register_coco_partial_masks,
    register_partial_masks,
    register_shapes_partial_masks,
)
from .pascal_voc import load_voc_folder, register_voc_dataset
from .semantic import register_semantic_shapes

register_all_shapes()
register_real_fewshot_datasets()  # VOC/COCO/LVIS few-shot names, for the folders that exist
register_all_classification()  # after the shapes names: shapes_cls_* reads their metadata
register_shapes_partial_masks()  # after the shapes names too (copies their metadata)
register_coco_partial_masks()  # COCO's VOC / non-VOC mask views (Detectron2 registers COCO)
register_semantic_shapes()

__all__ = [
    "register_all_shapes", "register_coco_json_dataset", "read_coco_json",
    "register_datasets_from_config", "load_voc_folder", "register_voc_dataset",
    "DatasetFormatError", "EmptyDatasetError", "ImageReadError", "UnknownDatasetError",
    "ClassificationMapper",
    "build_classification_train_loader", "build_classification_test_loader",
    "register_all_classification", "register_partial_masks", "register_shapes_partial_masks",
    "register_coco_partial_masks", "register_semantic_shapes",
]
