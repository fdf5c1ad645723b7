"""User COCO-format datasets without code edits: validate the JSON, then register it.

``DATASETS.COCO_JSON_DATASETS: [[name, json_file, image_root], ...]`` in a config (or
:func:`register_coco_json_dataset` in code) makes ``name`` usable in ``DATASETS.TRAIN/TEST``.
"""
import json
import os
from typing import Any, Dict, Iterable, Sequence

from detectron2.data import MetadataCatalog
from detectron2.data.datasets import register_coco_instances

from .catalog import unregister
from .errors import DatasetFormatError

_REQUIRED = {
    "images": ("id", "file_name", "height", "width"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}


def validate_coco_json(json_file: str) -> Dict[str, Any]:
    """Load ``json_file`` and check it is COCO instances format; return the parsed dict.

    Raises ``FileNotFoundError`` or :class:`DatasetFormatError` naming the file and the first
    key, entry or category id that is wrong.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO annotation file {json_file!r} does not exist")
    try:
        with open(json_file) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetFormatError(f"{json_file}: not a JSON file ({e})") from e
    if not isinstance(data, dict):
        raise DatasetFormatError(
            f"{json_file}: expected a COCO JSON object with keys {sorted(_REQUIRED)}, "
            f"got a {type(data).__name__}"
        )
    for section, keys in _REQUIRED.items():
        if not isinstance(data.get(section), list):
            raise DatasetFormatError(
                f"{json_file}: missing COCO key {section!r} (a list); found keys {sorted(data)}"
            )
        for i, entry in enumerate(data[section]):
            missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise DatasetFormatError(
                    f"{json_file}: {section}[{i}] lacks required key(s) {missing}; "
                    f"each entry of {section!r} needs {list(keys)}"
                )
    category_ids = {c["id"] for c in data["categories"]}
    image_ids = {im["id"] for im in data["images"]}
    for ann in data["annotations"]:
        if ann["category_id"] not in category_ids:
            raise DatasetFormatError(
                f"{json_file}: annotation id {ann['id']} has unknown category_id "
                f"{ann['category_id']!r}; 'categories' defines ids {sorted(category_ids)}"
            )
        if ann["image_id"] not in image_ids:
            raise DatasetFormatError(
                f"{json_file}: annotation id {ann['id']} refers to image_id {ann['image_id']!r} "
                f"that is not in 'images'"
            )
        if not (isinstance(ann["bbox"], (list, tuple)) and len(ann["bbox"]) == 4):
            raise DatasetFormatError(
                f"{json_file}: annotation id {ann['id']} has bbox {ann['bbox']!r}; "
                f"expected [x, y, width, height]"
            )
    return data


def register_coco_json_dataset(name: str, json_file: str, image_root: str) -> None:
    """Validate ``json_file`` and register it under ``name`` with Detectron2's COCO loader."""
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image_root {image_root!r} of dataset {name!r} is not a directory")
    data = validate_coco_json(json_file)
    unregister(name)
    register_coco_instances(name, {}, json_file, image_root)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    MetadataCatalog.get(name).set(
        thing_classes=[c["name"] for c in categories],
        thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(categories)},
    )


def register_from_config(entries: Iterable[Sequence[str]]) -> None:
    """Register each ``(name, json_file, image_root)`` of ``DATASETS.COCO_JSON_DATASETS``."""
    for i, entry in enumerate(entries):
        if len(entry) != 3:
            raise ValueError(
                f"DATASETS.COCO_JSON_DATASETS[{i}]={list(entry)!r}: expected "
                f"[name, json_file, image_root]"
            )
        register_coco_json_dataset(*entry)
