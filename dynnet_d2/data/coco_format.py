"""User COCO-format datasets without code edits: read and validate the JSON once, then register it.

``DATASETS.COCO_JSON_DATASETS: [[name, json_file, image_root], ...]`` in a config (or
:func:`register_coco_json_dataset` in code) makes ``name`` usable in ``DATASETS.TRAIN/TEST``.

The file is parsed once per process: registration validates it and sets the metadata, and the
first load turns that same parsed dict into Detectron2 dataset dicts with
:func:`coco_dicts_from_json` (what Detectron2's ``load_coco_json`` returns, without parsing the
file again and building pycocotools' indexes).
"""
import json
import logging
import os
from functools import partial
from typing import Any, Dict, List, Mapping, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from pycocotools import mask as mask_utils

from .build import is_box
from .catalog import unregister
from .errors import DatasetFormatError

logger = logging.getLogger(__name__)

_REQUIRED = {
    "images": ("id", "file_name", "height", "width"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}
# Annotation keys copied into Detectron2's dataset dicts (as load_coco_json does), besides
# "segmentation" and "keypoints", which are converted.
_ANNOTATION_KEYS = ("iscrowd", "bbox", "category_id")

# Parsed JSON of datasets registered in this process and not loaded yet: name -> dict.
_PARSED: Dict[str, dict] = {}


def validate_coco_dict(data: Any, json_file: str) -> dict:
    """Check that ``data`` (parsed from ``json_file``) is COCO instances format; return it.

    Raises :class:`DatasetFormatError` naming the file and the first key, entry, annotation id
    or value that is wrong.
    """
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
    if len(image_ids) != len(data["images"]):
        raise DatasetFormatError(f"{json_file}: image ids are not unique")
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
        bbox = ann["bbox"]
        if not is_box(bbox):
            raise DatasetFormatError(
                f"{json_file}: annotation id {ann['id']} has bbox {bbox!r}; "
                f"expected [x, y, width, height], four finite numbers"
            )
    return data


def read_coco_json(json_file: str) -> dict:
    """Parse ``json_file`` and validate it (:func:`validate_coco_dict`); return the dict.

    Raises ``FileNotFoundError`` or :class:`DatasetFormatError` naming the file.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO annotation file {json_file!r} does not exist")
    try:
        with open(json_file, "rb") as f:
            data = json.loads(f.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetFormatError(f"{json_file}: not a JSON file ({e})") from e
    return validate_coco_dict(data, json_file)


def _segmentation(segm: Any) -> Optional[Any]:
    """Detectron2's form of a COCO segmentation: polygons with >= 3 points, or compressed RLE.
    None when nothing valid is left (such an instance is dropped, as load_coco_json does)."""
    if isinstance(segm, dict):
        if isinstance(segm["counts"], list):
            return mask_utils.frPyObjects(segm, *segm["size"])
        return segm
    polygons = [p for p in segm if len(p) % 2 == 0 and len(p) >= 6]
    return polygons or None


def coco_dicts_from_json(data: Mapping, image_root: str,
                         id_map: Mapping[int, int]) -> List[dict]:
    """Detectron2 dataset dicts of a parsed COCO instances dict, as ``load_coco_json`` gives them.

    Images sorted by id; ``category_id`` mapped through ``id_map`` (JSON id -> contiguous);
    ``bbox`` XYWH_ABS; polygons with fewer than 3 points dropped (an instance without a valid
    one is skipped); uncompressed RLE compressed; keypoint coordinates + 0.5.
    """
    per_image: Dict[Any, List[dict]] = {im["id"]: [] for im in data["images"]}
    for ann in data["annotations"]:
        per_image[ann["image_id"]].append(ann)
    dicts = []
    for image in sorted(data["images"], key=lambda im: im["id"]):
        objs = []
        for ann in per_image[image["id"]]:
            obj = {key: ann[key] for key in _ANNOTATION_KEYS if key in ann}
            segm = ann.get("segmentation")
            if segm:
                segm = _segmentation(segm)
                if segm is None:
                    continue
                obj["segmentation"] = segm
            keypoints = ann.get("keypoints")
            if keypoints:
                obj["keypoints"] = [v + 0.5 if i % 3 != 2 else v for i, v in enumerate(keypoints)]
            obj["bbox_mode"] = BoxMode.XYWH_ABS
            obj["category_id"] = id_map[ann["category_id"]]
            objs.append(obj)
        dicts.append({"file_name": os.path.join(image_root, image["file_name"]),
                      "height": image["height"], "width": image["width"],
                      "image_id": image["id"], "annotations": objs})
    return dicts


def _load_registered(name: str, json_file: str, image_root: str) -> List[dict]:
    data = _PARSED.pop(name, None) or read_coco_json(json_file)
    dicts = coco_dicts_from_json(data, image_root,
                                 MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id)
    logger.info(f"Loaded {len(dicts)} images in COCO format from {json_file}")
    return dicts


def register_coco_json_dataset(name: str, json_file: str, image_root: str) -> None:
    """Read and validate ``json_file`` and register it under ``name`` (evaluator: COCO).

    The parsed JSON is kept until the dataset is first loaded, so the file is read once.
    """
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image_root {image_root!r} of dataset {name!r} is not a directory")
    data = read_coco_json(json_file)
    unregister(name)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    DatasetCatalog.register(name, partial(_load_registered, name, json_file, image_root))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco",
        thing_classes=[c["name"] for c in categories],
        thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(categories)},
    )
    _PARSED[name] = data

