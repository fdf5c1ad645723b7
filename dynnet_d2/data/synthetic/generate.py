"""Scene composition and generation of the synthetic "shapes" instance-segmentation dataset.

Every image is a deterministic function of ``(spec, split, index)``: its RNG is
``numpy.random.default_rng([spec.seed, split_code, index])``.  Images can therefore be rendered in
any order, by any number of worker processes, with identical results.
"""
import dataclasses
import fcntl
import json
import math
import multiprocessing
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from dynnet_d2.utils.io import atomic_write_json

from . import export
from .categories import (ALL_CLASSES, COLOR_NAMES, PREFERRED_COLOR, PREFERRED_COLOR_PROB,
                         PREFERRED_TEXTURE, PREFERRED_TEXTURE_PROB, TEXTURES)
from .render import (ASPECT_JITTER, add_clutter, add_pixel_noise, background, paint,
                     shape_mask)

GENERATOR_VERSION = "shapes-3"
DATASET_NAME = "shapes"

# Split name -> code used in the RNG seed and in integer image ids (code * 1e6 + index + 1).
SPLITS: Dict[str, int] = {"train": 1, "val": 2, "test": 3, "lvis_train": 4}
COCO_SPLITS: Tuple[str, ...] = ("train", "val", "test")
LVIS_SPLITS: Tuple[str, ...] = ("train", "val")  # lvis "val" = the (exhaustive) test images

# Long-tailed class sampling for lvis_train: P(rank k) ~ exp(-k / LVIS_DECAY) over a fixed
# permutation of the classes (the same for every seed).
LVIS_PERMUTATION_SEED = 20190805
LVIS_DECAY = 2.9

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines the dataset's content (part of the manifest)."""

    num_train: int = 3000
    num_val: int = 300
    num_test: int = 500
    num_lvis_train: int = 2000
    seed: int = 0
    min_objects: int = 2
    max_objects: int = 5
    # Image width and height are each drawn from range(min_size, max_size + 1, size_step).
    min_size: int = 128
    max_size: int = 192
    size_step: int = 16
    # Object scale (side of the shape's unit box, pixels): log-uniform in [min_scale, max_scale].
    min_scale: float = 20.0
    max_scale: float = 200.0
    min_visible: float = 0.5  # instances keep at least this fraction of their pixels visible
    min_area: int = 24  # and at least this many visible pixels
    max_truncation: float = 0.2  # fraction of an object's box that may lie outside the image
    jpeg_quality: int = 95
    crop_size: int = 32
    crop_context: float = 0.1
    neg_categories: int = 3  # LVIS neg_category_ids per image

    def __post_init__(self) -> None:
        counts = [self.num_train, self.num_val, self.num_test, self.num_lvis_train]
        if min(counts) < 0:
            raise ValueError(f"image counts must be >= 0, got {counts}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got "
                             f"{self.min_objects}, {self.max_objects}")
        if not 0 < self.min_size <= self.max_size or self.size_step <= 0:
            raise ValueError(f"bad image sizes {self.min_size}..{self.max_size} "
                             f"step {self.size_step}")
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got "
                             f"{self.min_scale}, {self.max_scale}")

    def num_images(self, split: str) -> int:
        return int(getattr(self, "num_" + _check_split(split)))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"Unknown synthetic split {split!r}; valid splits are {list(SPLITS)}.")
    return split


# ----------------------------------------------------------------------------------- paths
def default_root() -> Path:
    return Path(os.environ.get("DYNNET_DATASETS", "datasets"))


def dataset_dir(root: Optional[PathLike] = None) -> Path:
    return Path(default_root() if root is None else root) / DATASET_NAME


def voc_dir(root: Optional[PathLike] = None) -> Path:
    return dataset_dir(root) / "VOC"


def image_root(root: Optional[PathLike] = None) -> Path:
    """Directory holding every image; COCO/LVIS ``file_name`` fields are relative to it."""
    return voc_dir(root) / "JPEGImages"


def coco_json_path(split: str, root: Optional[PathLike] = None) -> Path:
    if split not in COCO_SPLITS:
        raise ValueError(f"Unknown COCO split {split!r}; valid splits are {list(COCO_SPLITS)}.")
    return dataset_dir(root) / "annotations" / f"instances_{split}.json"


def lvis_json_path(split: str, root: Optional[PathLike] = None) -> Path:
    if split not in LVIS_SPLITS:
        raise ValueError(f"Unknown LVIS split {split!r}; valid splits are {list(LVIS_SPLITS)}.")
    return dataset_dir(root) / "annotations" / f"lvis_v0.5_{split}.json"


def classification_path(split: str, root: Optional[PathLike] = None) -> Path:
    if split not in COCO_SPLITS:
        raise ValueError(
            f"Unknown classification split {split!r}; valid splits are {list(COCO_SPLITS)}.")
    return dataset_dir(root) / "classification" / f"{split}.npz"


def manifest_path(root: Optional[PathLike] = None) -> Path:
    return dataset_dir(root) / "manifest.json"


def load_classification(split: str, root: Optional[PathLike] = None) -> Dict[str, np.ndarray]:
    """The classification view of ``split``: ``images`` (N,S,S,3 uint8), ``labels`` (0..19 in
    ``ALL_CLASSES`` order), ``color``/``texture``/``size`` indices and COCO ``image_ids``."""
    with np.load(classification_path(split, root)) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------- scene rendering
def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLITS[_check_split(split)], int(index)])


def image_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def image_int_id(split: str, index: int) -> int:
    return SPLITS[split] * 1_000_000 + index + 1


def lvis_class_probs() -> np.ndarray:
    """Per-class sampling probabilities (canonical order) of the long-tailed lvis_train split."""
    perm = lvis_class_ranking()
    w = np.exp(-np.arange(len(ALL_CLASSES)) / LVIS_DECAY)
    p = np.empty(len(ALL_CLASSES))
    p[perm] = w / w.sum()
    return p


def lvis_class_ranking() -> np.ndarray:
    """Class indices from most to least frequent in lvis_train."""
    return np.random.default_rng(LVIS_PERMUTATION_SEED).permutation(len(ALL_CLASSES))


def _size_label(area: int) -> str:
    return "small" if area < 32 ** 2 else ("medium" if area < 96 ** 2 else "large")


def mask_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons of a binary mask, one per connected component, holes included.

    Contours are traced on the 2x nearest-upsampled mask (so that they run just inside the
    pixel edges and rasterise back to the same pixels) and simplified with a 0.3 px tolerance.
    A hole is joined to its outer contour by a zero-width "keyhole" bridge walked in both
    directions, which the even-odd fill of pycocotools / Detectron2 turns back into a hole.
    """
    k = 2
    up = cv2.resize(mask, (mask.shape[1] * k, mask.shape[0] * k), interpolation=cv2.INTER_NEAREST)
    contours, hier = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hier is None:
        return []
    hier = hier[0]

    def pts(c: np.ndarray) -> np.ndarray:
        c = cv2.approxPolyDP(c, 0.3 * k, True)
        return (c.reshape(-1, 2).astype(np.float64) + 0.5) / k

    polys = []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:
            continue
        outer = pts(c)
        if len(outer) < 3:
            continue
        seq = [outer, outer[:1]]
        child = hier[i][2]
        while child != -1:
            hole = pts(contours[child])
            if len(hole) >= 3:
                seq += [hole, hole[:1], outer[:1]]
            child = hier[child][0]
        polys.append(np.concatenate(seq).ravel().tolist())
    return polys


def _polygon_mask_stats(polys: List[List[float]], h: int, w: int) -> Tuple[int, List[float]]:
    rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    return int(mask_utils.area(rle)), [float(v) for v in mask_utils.toBbox(rle)]


def _sample_pose(rng, spec: SyntheticSpec, shape: str, scale: float, h: int, w: int):
    rotation = float(rng.uniform(0.0, 360.0))
    aspect = math.exp(rng.uniform(-ASPECT_JITTER[shape], ASPECT_JITTER[shape]))
    m = 0.5 - spec.max_truncation
    mx, my = min(m * scale, w / 2), min(m * scale, h / 2)
    cx, cy = float(rng.uniform(mx, w - mx)), float(rng.uniform(my, h - my))
    return rotation, aspect, cx, cy


def _preferred_or_other(rng: np.random.Generator, preferred: str, prob: float,
                        choices: Sequence[str]) -> str:
    """``preferred`` with probability ``prob``, else one of the other ``choices`` uniformly."""
    if rng.random() < prob:
        return preferred
    others = [c for c in choices if c != preferred]
    return others[int(rng.integers(len(others)))]


def render_scene(spec: SyntheticSpec, split: str, index: int
                 ) -> Tuple[np.ndarray, List[dict], np.random.Generator]:
    """Render image ``index`` of ``split``: (RGB uint8 image, instances, its RNG after use).

    Each instance dict holds the visible ``mask`` (uint8), ``category`` (index), ``attributes``
    and ``truncated``; instances are listed back to front.
    """
    rng = image_rng(spec.seed, split, index)
    sizes = np.arange(spec.min_size, spec.max_size + 1, spec.size_step)
    w, h = int(rng.choice(sizes)), int(rng.choice(sizes))
    lvis_p = lvis_class_probs() if split == "lvis_train" else None
    forced = None
    if split == "lvis_train" and index < len(ALL_CLASSES):
        forced = int(lvis_class_ranking()[-1 - index])  # every class occurs at least once

    for _ in range(20):  # re-compose in the (rare) case that too few objects fit
        img = background(rng, h, w)
        add_clutter(img, rng)
        labels = np.full((h, w), -1, np.int16)  # index of the top-most instance per pixel
        objs: List[dict] = []
        full_counts: List[int] = []
        vis_counts = np.zeros(0, np.int64)
        n = int(rng.integers(spec.min_objects, spec.max_objects + 1))
        slots = []
        for slot in range(n):
            if forced is not None and slot == 0:
                cat = forced
            elif lvis_p is not None:
                cat = int(rng.choice(len(ALL_CLASSES), p=lvis_p))
            else:
                cat = int(rng.integers(len(ALL_CLASSES)))
            shape = ALL_CLASSES[cat]
            color = _preferred_or_other(rng, PREFERRED_COLOR[shape], PREFERRED_COLOR_PROB, COLOR_NAMES)
            texture = _preferred_or_other(rng, PREFERRED_TEXTURE[shape], PREFERRED_TEXTURE_PROB, TEXTURES)
            log_s = rng.uniform(math.log(spec.min_scale), math.log(spec.max_scale))
            scale = min(math.exp(log_s), 0.95 * min(h, w))
            # Paint roughly from large to small (so that large objects can fit at all), with
            # enough jitter that similar-sized objects occlude each other in either order.
            slots.append((log_s + rng.normal(0.0, 0.5), cat, shape, color, texture, scale))
        slots.sort(key=lambda t: -t[0])
        for _key, cat, shape, color, texture, scale in slots:
            for attempt in range(8):
                if attempt >= 4:  # does not fit where it is tried: shrink it
                    scale = max(scale * 0.75, spec.min_scale)
                rot, aspect, cx, cy = _sample_pose(rng, spec, shape, scale, h, w)
                mask = shape_mask(shape, h, w, cx, cy, scale, rot, aspect)
                full = mask.astype(bool)
                count = int(np.count_nonzero(full))
                if count < spec.min_area:
                    continue
                if objs:
                    covered = np.bincount(labels[full] + 1, minlength=len(objs) + 1)[1:]
                    left = vis_counts - covered
                    if np.any(left < spec.min_visible * np.asarray(full_counts)) or \
                            np.any(left < spec.min_area):
                        continue
                    vis_counts = left
                labels[full] = len(objs)
                vis_counts = np.append(vis_counts, count)
                full_counts.append(count)
                bx, by, bw, bh = cv2.boundingRect(mask)
                truncated = int(bx == 0 or by == 0 or bx + bw == w or by + bh == h)
                paint(img, mask, texture, color, rng)
                objs.append({"category": cat, "truncated": truncated, "attributes": {
                    "shape": shape, "color": color, "texture": texture, "size": None,
                    "scale_px": round(scale, 2), "rotation_deg": round(rot, 2),
                    "occluded_fraction": None}})
                break
        if len(objs) >= spec.min_objects:
            break
    img = add_pixel_noise(img, rng)
    for j, o in enumerate(objs):
        o["mask"] = (labels == j).astype(np.uint8)
        o["attributes"]["occluded_fraction"] = round(1.0 - float(vis_counts[j]) / full_counts[j], 4)
    return img, objs, rng


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
        area, bbox = _polygon_mask_stats(polys, h, w) if polys else (0, [0.0] * 4)
        if area <= 0:  # cannot happen with min_area >= 1, kept as a guard
            continue
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


# ------------------------------------------------------------------------------ generation
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_partials(root: Path) -> None:
    for p in root.glob(f".{DATASET_NAME}.*-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid() or not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def generate_dataset(root: Optional[PathLike] = None, spec: SyntheticSpec = SyntheticSpec(),
                     workers: int = 2) -> Path:
    """(Re)generate the dataset under ``root/shapes`` and return that directory.

    Everything is written into a hidden sibling directory first, ``manifest.json`` last, and the
    finished directory is then moved into place, so ``root/shapes`` is either the old complete
    dataset, absent for an instant, or the new complete dataset.
    """
    t0 = time.perf_counter()
    root = Path(default_root() if root is None else root)
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale_partials(root)
    work = root / f".{DATASET_NAME}.partial-{os.getpid()}"
    for sub in ("VOC/JPEGImages", "VOC/Annotations", "VOC/ImageSets/Main", "annotations",
                "classification"):
        (work / sub).mkdir(parents=True, exist_ok=True)

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

    manifest = {"name": DATASET_NAME, "generator_version": GENERATOR_VERSION,
                "seed": spec.seed, "spec": spec.to_dict(), "counts": counts,
                "classes": list(ALL_CLASSES),
                "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_json(work / "manifest.json", manifest, indent=1)

    final = dataset_dir(root)
    old = root / f".{DATASET_NAME}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(work, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def read_manifest(root: Optional[PathLike] = None) -> Optional[dict]:
    """The manifest as a dict, or None if it is missing or unreadable."""
    try:
        with open(manifest_path(root)) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def is_complete(root: Optional[PathLike] = None, spec: SyntheticSpec = SyntheticSpec()) -> bool:
    m = read_manifest(root)
    return bool(m) and m.get("generator_version") == GENERATOR_VERSION \
        and m.get("spec") == spec.to_dict()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def ensure_synthetic(root: Optional[PathLike] = None, spec: SyntheticSpec = SyntheticSpec(),
                     workers: int = 2, force: bool = False) -> Path:
    """Return ``root/shapes``, generating it first unless a complete copy made from ``spec`` by
    this generator version is there (``force``: regenerate anyway).  Safe to call from several
    processes at once: they serialise on a lock file in ``root`` and all but the first find the
    dataset ready."""
    root = Path(default_root() if root is None else root)
    if not force and is_complete(root, spec):
        return dataset_dir(root)
    with _file_lock(root / f".{DATASET_NAME}.lock"):
        if not force and is_complete(root, spec):
            return dataset_dir(root)
        return generate_dataset(root, spec, workers=workers)
