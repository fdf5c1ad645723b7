"""Writers for the synthetic dataset views: COCO, Pascal VOC, LVIS-v0.5, classification crops.

All functions take *records*, the per-image dicts produced by ``generate.render_record``:

    {"image_id": "train_000123", "id": 1000124, "split": "train", "file_name": "train_000123.jpg",
     "width": W, "height": H, "neg_category_ids": [...],
     "instances": [{"category_id": 1..20, "bbox": [x, y, w, h], "area": int,
                    "segmentation": [[x0, y0, ...], ...], "truncated": 0|1,
                    "attributes": {...}}, ...],
     "crops": uint8 array (n, S, S, 3) or None}

JSON/npz/txt files go through :mod:`dynnet_d2.utils.io` so they are never half-written.
"""
import io
import json
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy as np

from ...utils.io import atomic_open
from .categories import ALL_CLASSES, COLOR_NAMES, DEFINITIONS, SIZES, SUPERCATEGORY, TEXTURES

# LVIS's frequency groups by number of training images: rare 1-10, common 11-100, frequent >100.
LVIS_RARE_MAX = 10
LVIS_COMMON_MAX = 100


def _dump(path: Path, obj) -> None:
    # Compact, key-order-preserving and float-repr based: byte-identical for identical inputs.
    # json.dumps (C encoder) is several times faster than json.dump's chunked Python encoder.
    text = json.dumps(obj, separators=(",", ":"))
    with atomic_open(path, "w") as f:
        f.write(text)


def coco_categories() -> List[dict]:
    return [{"id": i + 1, "name": c, "supercategory": SUPERCATEGORY[c]}
            for i, c in enumerate(ALL_CLASSES)]


def _image_entry(rec: dict) -> dict:
    return {"id": rec["id"], "file_name": rec["file_name"], "width": rec["width"],
            "height": rec["height"]}


def _annotations(rec: dict, first_id: int, **extra) -> List[dict]:
    """COCO/LVIS annotation entries of one image record, numbered from ``first_id``."""
    return [{"id": first_id + k, "image_id": rec["id"], "category_id": inst["category_id"],
             "bbox": inst["bbox"], "area": inst["area"], **extra,
             "segmentation": inst["segmentation"], "attributes": inst["attributes"]}
            for k, inst in enumerate(rec["instances"])]


def coco_dict(records: Sequence[dict], split: str, info: dict) -> dict:
    images, anns = [], []
    for rec in records:
        images.append(_image_entry(rec))
        anns += _annotations(rec, first_id=len(anns) + 1, iscrowd=0)
    return {"info": {**info, "split": split}, "licenses": [], "images": images,
            "annotations": anns, "categories": coco_categories()}


def write_coco(path: Path, records: Sequence[dict], split: str, info: dict) -> dict:
    d = coco_dict(records, split, info)
    _dump(path, d)
    return d


def lvis_frequency(image_count: int) -> str:
    if image_count > LVIS_COMMON_MAX:
        return "f"
    if image_count > LVIS_RARE_MAX:
        return "c"
    return "r"  # includes the (degenerate) zero-image case


def lvis_categories(train_records: Sequence[dict]) -> List[dict]:
    """LVIS category block; counts and frequencies always come from the *training* records."""
    img_count, inst_count = Counter(), Counter()
    for rec in train_records:
        cats = [inst["category_id"] for inst in rec["instances"]]
        inst_count.update(cats)
        img_count.update(set(cats))
    out = []
    for i, c in enumerate(ALL_CLASSES):
        cid = i + 1
        out.append({
            "id": cid, "name": c, "synonyms": [c], "def": DEFINITIONS[c],
            "synset": f"{c}.n.01", "frequency": lvis_frequency(img_count[cid]),
            "image_count": int(img_count[cid]), "instance_count": int(inst_count[cid]),
        })
    return out


def lvis_dict(records: Sequence[dict], categories: List[dict], info: dict) -> dict:
    images, anns = [], []
    for rec in records:
        img = _image_entry(rec)
        # Detectron2 <= 0.6 derives the path from coco_url as image_root + <folder> / <name>;
        # an empty folder component makes that resolve to image_root / file_name as well.
        img["coco_url"] = f"synthetic://shapes//{rec['file_name']}"
        img["not_exhaustive_category_ids"] = []
        img["neg_category_ids"] = list(rec["neg_category_ids"])
        images.append(img)
        anns += _annotations(rec, first_id=len(anns) + 1)
    return {"info": info, "licenses": [], "images": images, "annotations": anns,
            "categories": categories}


def write_lvis(path: Path, records: Sequence[dict], categories: List[dict], info: dict) -> dict:
    d = lvis_dict(records, categories, info)
    _dump(path, d)
    return d


def voc_xml(rec: dict) -> str:
    """Pascal VOC XML; boxes in VOC's 1-based inclusive pixel coordinates."""
    lines = [
        "<annotation>",
        "  <folder>VOC</folder>",
        f"  <filename>{rec['file_name']}</filename>",
        "  <source><database>dynnet_d2 synthetic shapes</database></source>",
        f"  <size><width>{rec['width']}</width><height>{rec['height']}</height>"
        "<depth>3</depth></size>",
        "  <segmented>0</segmented>",
    ]
    for inst in rec["instances"]:
        x, y, w, h = (int(round(v)) for v in inst["bbox"])
        lines += [
            "  <object>",
            f"    <name>{ALL_CLASSES[inst['category_id'] - 1]}</name>",
            "    <pose>Unspecified</pose>",
            f"    <truncated>{int(inst['truncated'])}</truncated>",
            "    <difficult>0</difficult>",
            f"    <bndbox><xmin>{x + 1}</xmin><ymin>{y + 1}</ymin>"
            f"<xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox>",
            "  </object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write_imageset(path: Path, image_ids: Iterable[str]) -> None:
    with atomic_open(path, "w") as f:
        for iid in image_ids:
            f.write(iid + "\n")


def write_classification(path: Path, records: Sequence[dict]) -> Dict[str, int]:
    """Object crops of ``records`` as an npz (NHWC uint8) with labels and attribute indices."""
    crops, labels, color, texture, size, image_ids = [], [], [], [], [], []
    for rec in records:
        if rec["instances"]:
            crops.append(rec["crops"])
        for inst in rec["instances"]:
            a = inst["attributes"]
            labels.append(inst["category_id"] - 1)
            color.append(COLOR_NAMES.index(a["color"]))
            texture.append(TEXTURES.index(a["texture"]))
            size.append(SIZES.index(a["size"]))
            image_ids.append(rec["id"])
    s = records[0]["crops"].shape[1] if records and records[0]["crops"] is not None else 32
    arrays = {
        "images": np.concatenate(crops) if crops else np.zeros((0, s, s, 3), np.uint8),
        "labels": np.asarray(labels, np.int64),
        "color": np.asarray(color, np.int64),
        "texture": np.asarray(texture, np.int64),
        "size": np.asarray(size, np.int64),
        "image_ids": np.asarray(image_ids, np.int64),
    }
    assert len(arrays["images"]) == len(labels)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())
    return {"num_crops": len(labels)}


def write_vocab(path: Path) -> None:
    _dump(path, {"labels": list(ALL_CLASSES), "color": list(COLOR_NAMES),
                 "texture": list(TEXTURES), "size": list(SIZES)})
