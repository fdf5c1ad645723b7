"""Generation of the synthetic "shapes" dataset: per-image annotation records, writing the images
and the COCO / VOC / LVIS / classification views, the worker pool, and ``ensure_synthetic``.

The record format is described in :mod:`.export`; scenes are composed in :mod:`.scene`.
"""
import json
import logging
import math
import multiprocessing
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

import dynnet_d2

from ...utils.io import atomic_write_json
from . import export
from .categories import ALL_CLASSES
from .locking import (
    file_lock,
    lock_path,
    remove_stale_work_dirs,
    resolve_lock_timeout,
    swap_into_place,
    work_dir,
)
from .paths import PathLike, dataset_dir, default_root, is_complete
from .polygons import mask_polygons, polygon_mask_stats
from .scene import render_scene
from .spec import COCO_SPLITS, DATASET_NAME, GENERATOR_VERSION, SPLITS, SyntheticSpec

logger = logging.getLogger(__name__)

CHILD_STDERR_TAIL = 4000  # characters of a failed generation child's stderr put in the error


def image_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def image_int_id(split: str, index: int) -> int:
    return SPLITS[split] * 1_000_000 + index + 1


def _size_label(area: int) -> str:
    return "small" if area < 32 ** 2 else ("medium" if area < 96 ** 2 else "large")


def _crop(img: np.ndarray, bbox: Sequence[float], size: int, context: float) -> np.ndarray:
    h, w = img.shape[:2]
    x, y, bw, bh = bbox
    x0 = max(int(math.floor(x - context * bw)), 0)
    y0 = max(int(math.floor(y - context * bh)), 0)
    x1 = min(int(math.ceil(x + bw + context * bw)), w)
    y1 = min(int(math.ceil(y + bh + context * bh)), h)
    patch = img[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if min(patch.shape[:2]) >= size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def render_record(spec: SyntheticSpec, split: str, index: int
                  ) -> Tuple[np.ndarray, dict]:
    """Render one image and build its annotation record (see :mod:`.export`)."""
    img, objs, rng = render_scene(spec, split, index)
    h, w = img.shape[:2]
    name = image_name(split, index)
    instances = []
    for o in objs:
        polys = mask_polygons(o["mask"])
        area, bbox = polygon_mask_stats(polys, h, w)
        attrs = dict(o["attributes"], size=_size_label(area))
        instances.append({"category_id": o["category"] + 1, "bbox": bbox, "area": area,
                          "segmentation": polys, "truncated": o["truncated"],
                          "attributes": attrs})
    present = {i["category_id"] for i in instances}
    absent = [c for c in range(1, len(ALL_CLASSES) + 1) if c not in present]
    k = min(spec.neg_categories, len(absent))
    neg = sorted(int(c) for c in rng.choice(absent, size=k, replace=False)) if k else []
    rec = {"image_id": name, "id": image_int_id(split, index), "split": split,
           "file_name": name + ".jpg", "width": w, "height": h, "neg_category_ids": neg,
           "instances": instances, "crops": None}
    if split in COCO_SPLITS:
        s = spec.crop_size
        crops = [_crop(img, i["bbox"], s, spec.crop_context) for i in instances]
        rec["crops"] = np.stack(crops) if crops else np.zeros((0, s, s, 3), np.uint8)
    return img, rec


def _render_and_write(args) -> dict:
    spec, split, index, out_dir = args
    img, rec = render_record(spec, split, index)
    vdir = Path(out_dir) / "VOC"
    ok = cv2.imwrite(str(vdir / "JPEGImages" / rec["file_name"]),
                     np.ascontiguousarray(img[:, :, ::-1]),
                     [cv2.IMWRITE_JPEG_QUALITY, int(spec.jpeg_quality)])
    if not ok:
        raise OSError(f"could not write {vdir / 'JPEGImages' / rec['file_name']}")
    with open(vdir / "Annotations" / (rec["image_id"] + ".xml"), "w") as f:
        f.write(export.voc_xml(rec))
    return rec


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _render_records(spec: SyntheticSpec, work: Path, workers: int) -> Dict[str, List[dict]]:
    """Render every image into ``work`` (JPEG + VOC XML); the records by split, in index order."""
    tasks = [(spec, split, i, str(work)) for split in SPLITS for i in range(spec.num_images(split))]
    if workers > 1 and len(tasks) > 1:
        # Not "fork": a parent that already used cv2/torch thread pools can deadlock its forked
        # children.  The forkserver imports this module once and forks clean workers from it.
        ctx = multiprocessing.get_context(
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload([__name__])
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            records = list(pool.imap(_render_and_write, tasks, chunksize=16))
    else:
        records = [_render_and_write(t) for t in tasks]
    by_split: Dict[str, List[dict]] = {s: [] for s in SPLITS}
    for rec in records:
        by_split[rec["split"]].append(rec)
    return by_split


def _write_views(work: Path, spec: SyntheticSpec, by_split: Dict[str, List[dict]]) -> dict:
    """Write the COCO, LVIS, classification and VOC image-set files; the manifest's counts."""
    info = {"description": "dynnet_d2 synthetic shapes", "version": GENERATOR_VERSION,
            "seed": spec.seed}
    ann_dir, vdir = work / "annotations", work / "VOC"
    counts = {}
    for split in COCO_SPLITS:
        d = export.write_coco(ann_dir / f"instances_{split}.json", by_split[split], split, info)
        counts[split] = {"images": len(d["images"]), "instances": len(d["annotations"])}
        export.write_classification(work / "classification" / f"{split}.npz", by_split[split])
    export.write_vocab(work / "classification" / "vocab.json")
    lvis_cats = export.lvis_categories(by_split["lvis_train"])
    export.write_lvis(ann_dir / "lvis_v0.5_train.json", by_split["lvis_train"], lvis_cats,
                      {**info, "split": "lvis_train"})
    export.write_lvis(ann_dir / "lvis_v0.5_val.json", by_split["test"], lvis_cats,
                      {**info, "split": "test"})
    counts["lvis_train"] = {
        "images": len(by_split["lvis_train"]),
        "instances": sum(len(r["instances"]) for r in by_split["lvis_train"]),
        "frequency": {f: sum(c["frequency"] == f for c in lvis_cats) for f in "fcr"},
    }
    sets = {s: [r["image_id"] for r in by_split[s]] for s in SPLITS}
    sets["trainval"] = sets["train"] + sets["val"]
    for name, ids in sets.items():
        export.write_imageset(vdir / "ImageSets" / "Main" / f"{name}.txt", ids)
    return counts


def generate_dataset(root: Optional[PathLike] = None, spec: SyntheticSpec = SyntheticSpec(),
                     workers: int = 2) -> Path:
    """(Re)generate the dataset under ``root/shapes`` and return that directory.

    Everything is written into a hidden sibling directory first, ``manifest.json`` last, and the
    finished directory is then moved into place, so ``root/shapes`` is either the old complete
    dataset, absent for an instant, or the new complete dataset.  No lock is taken: where other
    processes may generate at the same time, call :func:`ensure_synthetic`.

    With ``workers > 1`` the images are rendered by a process pool in a child interpreter
    (``python -m dynnet_d2.data.synthetic``), so any caller is safe, a script without an
    ``if __name__ == "__main__":`` guard included (an in-process pool would re-run such a script
    in every worker, which would generate again, recursively). A failure there raises
    ``RuntimeError`` with the end of the child's stderr.
    """
    if workers > 1:
        _generate_in_child_process(Path(default_root() if root is None else root), spec, workers)
        return dataset_dir(root)
    return generate_in_this_process(root, spec, workers=1)


def generate_in_this_process(root: Optional[PathLike], spec: SyntheticSpec,
                             workers: int) -> Path:
    """:func:`generate_dataset` in this process, its pool (``workers > 1``) started here: only
    for the entry module of the child interpreter, whose main guard makes that safe."""
    t0 = time.perf_counter()
    root = Path(default_root() if root is None else root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_work_dirs(root)
    work = work_dir(root)
    for sub in ("VOC/JPEGImages", "VOC/Annotations", "VOC/ImageSets/Main", "annotations",
                "classification"):
        (work / sub).mkdir(parents=True, exist_ok=True)

    counts = _write_views(work, spec, _render_records(spec, work, workers))
    manifest = {"name": DATASET_NAME, "generator_version": GENERATOR_VERSION,
                "seed": spec.seed, "spec": spec.to_dict(), "counts": counts,
                "classes": list(ALL_CLASSES),
                "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_json(work / "manifest.json", manifest, indent=1)

    final = dataset_dir(root)
    swap_into_place(work, final)
    return final


def _generate_in_child_process(root: Path, spec: SyntheticSpec, workers: int) -> None:
    """Run :func:`generate_in_this_process` in a fresh interpreter
    (``python -m dynnet_d2.data.synthetic``), whose worker pool re-imports only its guarded entry
    module, never the caller's ``__main__``."""
    cmd = [sys.executable, "-m", "dynnet_d2.data.synthetic", "--root", str(root),
           "--workers", str(workers), "--spec", json.dumps(spec.to_dict())]
    # The child imports the same dynnet_d2 as this process, installed or not.
    package_parent = str(Path(dynnet_d2.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"Generating the synthetic dataset in {dataset_dir(root)} failed: the child process "
            f"`{shlex.join(cmd)}` exited with status {proc.returncode}. The end of its stderr:\n"
            f"{proc.stderr[-CHILD_STDERR_TAIL:]}")


def ensure_synthetic(root: Optional[PathLike] = None, spec: SyntheticSpec = SyntheticSpec(),
                     workers: int = 2, force: bool = False,
                     lock_timeout: Optional[float] = None) -> Path:
    """Return ``root/shapes``, generating it first unless a complete copy made from ``spec`` by
    this generator version is there (``force``: regenerate anyway).

    Safe to call from several processes at once: they serialise on the lock file
    ``root/.shapes.lock`` and all but the first find the dataset ready.  A process waits for the
    lock at most ``lock_timeout`` seconds (default: ``$DYNNET_LOCK_TIMEOUT``, else 600), then
    raises ``TimeoutError`` naming the lock file and the pid holding it.

    Generation is :func:`generate_dataset` (in a child interpreter with ``workers > 1``, so
    callers need no ``if __name__ == "__main__":`` guard).
    """
    root = Path(default_root() if root is None else root)
    if not force and is_complete(root, spec):
        return dataset_dir(root)
    with file_lock(lock_path(root), resolve_lock_timeout(lock_timeout)):
        if not force and is_complete(root, spec):
            return dataset_dir(root)
        logger.info("generating the synthetic dataset in %s", dataset_dir(root))
        generate_dataset(root, spec, workers=workers)
    return dataset_dir(root)
