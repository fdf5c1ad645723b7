#!/usr/bin/env python
"""Benchmark: start-up cost of training on a large user COCO JSON (writes a JSON).

Generates (once, under ``--data``) a COCO JSON of ``--images`` small images with
``--per-image`` objects each (default 12,000 x 5 = 60,000 annotations, each with a box and a
``--polygon-points`` polygon, about COCO's bytes per annotation) and their image files, then
times ``tools/train_net.py`` on it for one iteration (no evaluation), ``--repeats`` times per tree
in alternation: wall time and peak RSS of the whole run, which start-up dominates. Each ``--tree``
is a checkout of dynnet_d2 to compare (e.g. this one and a ``git worktree`` of an older commit);
``--config`` is given per tree because config names change between versions.

    git worktree add /tmp/dynnet_before <commit>
    python tools/benchmark_startup.py --output benchmarks/startup_60k_annotations_2cpu.json \
        --tree before=/tmp/dynnet_before:configs/Base-RCNN-Tiny.yaml \
        --tree after=.:configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml

Resumable: a (tree, opts, repeat) run already recorded is skipped (``--rerun`` runs it again).
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

from dynnet_d2.utils.io import atomic_write_json
from dynnet_d2.utils.measure import run_measured

NUM_CLASSES = 20
IMAGE_SIZE = 64


def make_dataset(folder: Path, images: int, per_image: int, polygon_points: int) -> Path:
    """The COCO JSON (and its images) of the benchmark; written once, reused after."""
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


def run_once(name: str, checkout: Path, config: str, json_file: Path, data: Path, args,
             repeat: int) -> dict:
    """One train_net run of ``checkout`` on the benchmark data: command, wall time, peak RSS."""
    suffix = "_".join(args.opts)
    out = Path(args.output).with_suffix("") / f"{name}{'_' + suffix if suffix else ''}_{repeat}"
    cmd = [sys.executable, str(checkout / "tools" / "train_net.py"),
           "--config-file", str(checkout / config),
           "OUTPUT_DIR", out, "MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", 1,
           "SOLVER.IMS_PER_BATCH", 2,
           "DATASETS.COCO_JSON_DATASETS", f"[['startup_ds', '{json_file}', '{data / 'images'}']]",
           "DATASETS.TRAIN", "('startup_ds',)", "DATASETS.TEST", "()",
           "MODEL.ROI_HEADS.NUM_CLASSES", NUM_CLASSES] + args.opts
    env = dict(os.environ, PYTHONPATH=str(checkout))
    return {"checkout": str(checkout), "command": " ".join(map(str, cmd)),
            **run_measured(cmd, out.with_suffix(".log"), env=env)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True,
                        help="NAME=CHECKOUT:CONFIG (repeatable)")
    parser.add_argument("--images", type=int, default=12000)
    parser.add_argument("--per-image", type=int, default=5)
    parser.add_argument("--polygon-points", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="output/benchmarks/startup_data")
    parser.add_argument("--output", default="output/benchmarks/startup.json")
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="extra overrides KEY VALUE ... for every run (last argument)")
    args = parser.parse_args()
    trees = {}
    for spec in args.tree:
        name, _, rest = spec.partition("=")
        checkout, _, config = rest.partition(":")
        if (not (Path(checkout) / "tools" / "train_net.py").is_file()
                or not (Path(checkout) / config).is_file()):
            parser.error(f"--tree {spec}: expected NAME=CHECKOUT:CONFIG with "
                         f"CHECKOUT/tools/train_net.py and CHECKOUT/CONFIG existing")
        trees[name] = (Path(checkout).resolve(), config)
    data = Path(args.data).resolve()
    json_file = make_dataset(data, args.images, args.per_image, args.polygon_points)
    report = (json.loads(Path(args.output).read_text()) if Path(args.output).is_file()
              else {"runs": []})
    report.update(json_file=str(json_file), json_mib=round(json_file.stat().st_size / 2**20, 1),
                  images=args.images, annotations=args.images * args.per_image,
                  machine={"cpus": os.cpu_count(), "platform": platform.platform()})
    for repeat in range(args.repeats):
        for name, (checkout, config) in trees.items():
            key = {"tree": name, "opts": args.opts, "repeat": repeat, "json_file": str(json_file)}
            recorded = [r for r in report["runs"] if all(r.get(k) == v for k, v in key.items())]
            if recorded and recorded[0]["returncode"] == 0 and not args.rerun:
                print(f"{key}: already recorded, skipped")
                continue
            record = {**key, **run_once(name, checkout, config, json_file, data, args, repeat)}
            report["runs"] = [r for r in report["runs"] if r not in recorded] + [record]
            atomic_write_json(args.output, report, indent=2)
            print(json.dumps(record, indent=2), flush=True)
    return 0 if all(r["returncode"] == 0 for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
