"""Embedded synthetic instance-segmentation dataset ("shapes") used by every experiment and test.

20 shape classes with per-instance colour/texture attributes, instance masks, occlusion, scale
variation and background clutter, exported as COCO, Pascal VOC, LVIS-v0.5 and classification
crops under ``<root>/shapes``.  See ``datasets/README.md`` for the layout.
"""
from .categories import (ALL_CLASSES, COLOR_NAMES, COLORS, NOVEL_CLASSES, PREFERRED_COLOR,
                         PREFERRED_TEXTURE, SIZES, SPLIT_IDS, TEXTURES, all_classes, base_classes, novel_classes)
from .generate import (COCO_SPLITS, GENERATOR_VERSION, LVIS_SPLITS, SPLITS, SyntheticSpec,
                       classification_path, coco_json_path, dataset_dir, default_root,
                       ensure_synthetic, generate_dataset, image_root, is_complete,
                       load_classification, lvis_json_path, manifest_path, read_manifest,
                       voc_dir)

__all__ = [
    "ALL_CLASSES", "COLOR_NAMES", "COLORS", "NOVEL_CLASSES", "PREFERRED_COLOR", "PREFERRED_TEXTURE", "SIZES",
    "SPLIT_IDS", "TEXTURES", "all_classes", "base_classes", "novel_classes",
    "COCO_SPLITS", "GENERATOR_VERSION", "LVIS_SPLITS", "SPLITS", "SyntheticSpec",
    "classification_path", "coco_json_path", "dataset_dir", "default_root", "ensure_synthetic",
    "generate_dataset", "image_root", "is_complete", "load_classification", "lvis_json_path",
    "manifest_path", "read_manifest", "voc_dir",
]
