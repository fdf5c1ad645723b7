"""Embedded synthetic instance-segmentation dataset ("shapes") used by every experiment and test.

20 shape classes with per-instance colour/texture attributes, instance masks, occlusion, scale
variation and background clutter, exported as COCO, Pascal VOC, LVIS-v0.5 and classification
crops under ``<root>/shapes``.  See ``datasets/README.md`` for the layout.

Modules: :mod:`.spec` (what determines the content), :mod:`.categories` (classes, attributes,
few-shot splits), :mod:`.render` (drawing one shape), :mod:`.scene` (composing one image),
:mod:`.polygons` (masks as COCO polygons), :mod:`.export` (file formats), :mod:`.paths` (file
locations), :mod:`.locking` (cross-process safety), :mod:`.generate` (the whole dataset).
"""
from .categories import (
    ALL_CLASSES,
    COLOR_NAMES,
    COLORS,
    FEWSHOT_SPLITS,
    NOVEL_CLASSES,
    PREFERRED_COLOR,
    PREFERRED_TEXTURE,
    SIZES,
    TEXTURES,
    all_classes,
    base_classes,
    novel_classes,
)
from .generate import ensure_synthetic, generate_dataset
from .locking import DEFAULT_LOCK_TIMEOUT, LOCK_TIMEOUT_ENV
from .paths import (
    classification_path,
    coco_json_path,
    dataset_dir,
    default_root,
    image_root,
    is_complete,
    load_classification,
    lvis_json_path,
    manifest_path,
    read_manifest,
    voc_dir,
)
from .spec import COCO_SPLITS, GENERATOR_VERSION, LVIS_SPLITS, SPLITS, SyntheticSpec

__all__ = [
    "ALL_CLASSES", "COLOR_NAMES", "COLORS", "FEWSHOT_SPLITS", "NOVEL_CLASSES", "PREFERRED_COLOR",
    "PREFERRED_TEXTURE", "SIZES", "TEXTURES", "all_classes", "base_classes", "novel_classes",
    "ensure_synthetic", "generate_dataset", "DEFAULT_LOCK_TIMEOUT", "LOCK_TIMEOUT_ENV",
    "classification_path", "coco_json_path", "dataset_dir", "default_root", "image_root",
    "is_complete", "load_classification", "lvis_json_path", "manifest_path", "read_manifest",
    "voc_dir", "COCO_SPLITS", "GENERATOR_VERSION", "LVIS_SPLITS", "SPLITS", "SyntheticSpec",
]
