"""The start-up cost of training on a large user COCO JSON (tools/benchmark_startup.py is its
command line).

:func:`make_coco_dataset` writes (once) a COCO JSON of small images with several objects each,
every one with a box and a polygon of about COCO's bytes per annotation, and the image files;
:func:`run_startup_benchmark` times ``tools/train_net.py`` of each checkout ("tree") on it for one
iteration without evaluation, ``repeats`` times per tree in alternation: wall time and peak RSS
of the whole run (:func:`dynnet_d2.utils.measure.run_measured`), which start-up dominates. A
(tree, opts, repeat) run already recorded with return code 0 is skipped unless ``rerun``.
"""
import json
import os
import platform
import sys
from pathlib import Path
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

from ..utils.io import atomic_write_json
from ..utils.measure import run_measured

NUM_CLASSES = 20
IMAGE_SIZE = 64


def make_coco_dataset(folder: Path, images: int, per_image: int, polygon_points: int) -> Path:
    """The COCO JSON (and its images under ``folder/images``) of the benchmark: ``images``
    images of ``IMAGE_SIZE``^2 pixels with ``per_image`` objects of ``NUM_CLASSES`` classes, each
    a box and a ``polygon_points`` polygon; written once, reused after."""
    json_file = folder / f"instances_{images}x{per_image}_poly{polygon_points}.json"
    if json_file.is_file():
        return json_file
    image_dir = folder / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    entries, annotations = [], []
    for i in range(images):
        name = f"{i:06d}.jpg"
        if not (image_dir / name).is_file():
            cv2.imwrite(str(image_dir / name), np.roll(tile, i, axis=1))
        entries.append({"id": i + 1, "file_name": name, "height": IMAGE_SIZE, "width": IMAGE_SIZE})
        for _ in range(per_image):
            x, y = rng.uniform(0, IMAGE_SIZE / 2, 2).round(1)
            w, h = rng.uniform(8, IMAGE_SIZE / 2, 2).round(1)
            angles = np.linspace(0, 2 * np.pi, polygon_points, endpoint=False)
            polygon = np.stack([x + w / 2 * (1 + np.cos(angles)),
                                y + h / 2 * (1 + np.sin(angles))], 1)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "iscrowd": 0,
                                "category_id": int(rng.integers(1, NUM_CLASSES + 1)),
                                "bbox": [x, y, w, h], "area": round(w * h, 1),
                                "segmentation": [polygon.round(2).ravel().tolist()]})
    categories = [{"id": c + 1, "name": f"class{c}"} for c in range(NUM_CLASSES)]
    atomic_write_json(json_file, {"images": entries, "annotations": annotations,
                                  "categories": categories})
    return json_file


def parse_tree(spec: str) -> Tuple[str, Path, str]:
    """``NAME=CHECKOUT:CONFIG`` -> ``(name, checkout resolved, config)``; ``ValueError`` unless
    ``CHECKOUT/tools/train_net.py`` and ``CHECKOUT/CONFIG`` exist."""
    name, _, rest = spec.partition("=")
    checkout, _, config = rest.partition(":")
    if (not (Path(checkout) / "tools" / "train_net.py").is_file()
            or not (Path(checkout) / config).is_file()):
        raise ValueError(f"--tree {spec}: expected NAME=CHECKOUT:CONFIG with "
                         f"CHECKOUT/tools/train_net.py and CHECKOUT/CONFIG existing")
    return name, Path(checkout).resolve(), config


def run_once(name: str, checkout: Path, config: str, json_file: Path, data: Path, output: str,
             opts: Sequence[str], repeat: int) -> dict:
    """One train_net run of ``checkout`` on the benchmark data: command, wall time, peak RSS."""
    suffix = "_".join(opts)
    out = Path(output).with_suffix("") / f"{name}{'_' + suffix if suffix else ''}_{repeat}"
    cmd = [sys.executable, str(checkout / "tools" / "train_net.py"),
           "--config-file", str(checkout / config),
           "OUTPUT_DIR", out, "MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", 1,
           "SOLVER.IMS_PER_BATCH", 2,
           "DATASETS.COCO_JSON_DATASETS", f"[['startup_ds', '{json_file}', '{data / 'images'}']]",
           "DATASETS.TRAIN", "('startup_ds',)", "DATASETS.TEST", "()",
           "MODEL.ROI_HEADS.NUM_CLASSES", NUM_CLASSES] + list(opts)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    return {"checkout": str(checkout), "command": " ".join(map(str, cmd)),
            **run_measured(cmd, out.with_suffix(".log"), env=env)}


def run_startup_benchmark(trees: Dict[str, Tuple[Path, str]], *, output: str, data: Path,
                          images: int, per_image: int, polygon_points: int, repeats: int,
                          rerun: bool, opts: Sequence[str]) -> int:
    """Time every ``name: (checkout, config)`` of ``trees`` ``repeats`` times in alternation,
    the report rewritten in ``output`` after every run; the exit code (0: every run succeeded)."""
    json_file = make_coco_dataset(data, images, per_image, polygon_points)
    report = json.loads(Path(output).read_text()) if Path(output).is_file() else {"runs": []}
    report.update(json_file=str(json_file), json_mib=round(json_file.stat().st_size / 2**20, 1),
                  images=images, annotations=images * per_image,
                  machine={"cpus": os.cpu_count(), "platform": platform.platform()})
    for repeat in range(repeats):
        for name, (checkout, config) in trees.items():
            key = {"tree": name, "opts": list(opts), "repeat": repeat,
                   "json_file": str(json_file)}
            recorded = [r for r in report["runs"] if all(r.get(k) == v for k, v in key.items())]
            if recorded and recorded[0]["returncode"] == 0 and not rerun:
                print(f"{key}: already recorded, skipped")
                continue
            record = {**key, **run_once(name, checkout, config, json_file, data, output, opts,
                                        repeat)}
            report["runs"] = [r for r in report["runs"] if r not in recorded] + [record]
            atomic_write_json(output, report, indent=2)
            print(json.dumps(record, indent=2), flush=True)
    return 0 if all(r["returncode"] == 0 for r in report["runs"]) else 1
