"""K-shot split files in TFA's published formats, written atomically and read back.

* VOC style: ``<root>/seed<N>/box_<K>shot_<class>_train.txt``, one image per line. We write
  image ids; fsdet's published files list image paths
  (``datasets/VOC2007/JPEGImages/000005.jpg``), which read back as their file stem.
* COCO/LVIS style: ``<root>/seed<N>/full_box_<K>shot_<class>_trainval.json``: a COCO JSON with
  the selected images, only the annotations of ``<class>`` on them, and every category.

fsdet keeps seed 0 (the original FSRW sample) directly in ``<root>``, without ``seed0/``; a
reader looks in ``seed0/`` first, then there, so fsdet's split folders work as they are.
"""
import json
import os
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

from ...utils.io import atomic_open
from ..errors import DatasetFormatError

FORMATS = ("voc", "coco")


def voc_split_file(root: str, seed: int, shot: int, class_name: str) -> Path:
    return Path(root) / f"seed{seed}" / f"box_{shot}shot_{class_name}_train.txt"


def coco_split_file(root: str, seed: int, shot: int, class_name: str) -> Path:
    return Path(root) / f"seed{seed}" / f"full_box_{shot}shot_{class_name}_trainval.json"


def split_file(fmt: str, root: str, seed: int, shot: int, class_name: str) -> Path:
    """Where the split file of (``seed``, ``shot``, ``class_name``) is written."""
    if fmt not in FORMATS:
        raise ValueError(f"few-shot split format {fmt!r}: expected one of {FORMATS}")
    return (voc_split_file if fmt == "voc" else coco_split_file)(root, seed, shot, class_name)


def existing_split_file(fmt: str, root: str, seed: int, shot: int, class_name: str) -> Path:
    """The split file to read: ``seed<N>/...``, or for seed 0 fsdet's ``<root>/...``.

    ``FileNotFoundError`` names every path tried.
    """
    path = split_file(fmt, root, seed, shot, class_name)
    candidates = [path] + ([path.parent.parent / path.name] if seed == 0 else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {shot}-shot split file of class {class_name!r} for seed {seed}: tried "
        f"{[str(c) for c in candidates]}; write them with tools/prepare_fewshot_splits.py"
    )


def write_voc_split(root: str, seed: int, samples: Mapping[str, Mapping[int, Sequence[str]]]):
    """Write ``{class: {K: [image ids]}}`` as VOC-style text files under ``root/seed<seed>``."""
    for class_name, per_shot in samples.items():
        for shot, keys in per_shot.items():
            with atomic_open(voc_split_file(root, seed, shot, class_name), "w") as f:
                f.write("".join(f"{key}\n" for key in keys))


def read_voc_split(path: Path) -> List[str]:
    """Image ids of a VOC-style split file (an image path reads as its file stem)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [os.path.splitext(os.path.basename(line))[0] for line in lines if line]


def write_coco_split(root: str, seed: int, samples: Mapping[str, Mapping[int, Sequence[str]]],
                     coco: Mapping, category_ids: Mapping[str, int]) -> None:
    """Write ``{class: {K: [image ids]}}`` as COCO-style JSON files under ``root/seed<seed>``.

    ``coco`` is the parsed source JSON; ``category_ids`` maps class name -> its JSON id. Each file
    keeps the source's categories (and info/licenses if present), the selected images in
    selection order and the non-crowd annotations of the class on them.
    """
    images = {str(im["id"]): im for im in coco["images"]}
    annotations: Dict[tuple, List[dict]] = {}
    for ann in coco["annotations"]:
        if not ann.get("iscrowd", 0):
            annotations.setdefault((str(ann["image_id"]), ann["category_id"]), []).append(ann)
    extra = {k: coco[k] for k in ("info", "licenses") if k in coco}
    for class_name, per_shot in samples.items():
        category_id = category_ids[class_name]
        for shot, keys in per_shot.items():
            content = {**extra, "images": [images[k] for k in keys],
                       "annotations": [a for k in keys for a in annotations[(k, category_id)]],
                       "categories": coco["categories"]}
            with atomic_open(coco_split_file(root, seed, shot, class_name), "w") as f:
                f.write(json.dumps(content, separators=(",", ":")))


def read_coco_split(path: Path) -> dict:
    """The parsed COCO-style split file (a dict with images, annotations, categories)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetFormatError(f"{path}: not a readable COCO JSON split file ({e})") from e
    missing = [k for k in ("images", "annotations") if not isinstance(data.get(k), list)]
    if missing:
        raise DatasetFormatError(f"{path}: a COCO-style split file needs lists {missing}")
    return data
