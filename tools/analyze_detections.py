#!/usr/bin/env python
"""Split a detector's error into localization and classification (writes a JSON).

Given the COCO ground truth and Detectron2's ``coco_instances_results.json``, reports COCO AP50 and
AR@100 with and without categories (``useCats=0``: a box is right wherever it is, whatever its
class), the share of matched objects (IoU >= 0.5 with some detection) whose top-scoring matching
detection has the right class, and the most frequent (true -> predicted) confusions.

    python tools/analyze_detections.py datasets/shapes/annotations/instances_test.json \
        OUTPUT_DIR/inference/shapes_test/coco_instances_results.json --output analysis.json
"""
import argparse
import contextlib
import io
import json
import os
import sys
from collections import Counter

from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dynnet_d2.utils.io import atomic_write_json  # noqa: E402


def coco_ap50_ar100(gt: COCO, dt: COCO, use_cats: bool) -> dict:
    evaluator = COCOeval(gt, dt, "bbox")
    evaluator.params.useCats = int(use_cats)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"AP50": 100 * evaluator.stats[1], "AR100": 100 * evaluator.stats[8]}


def classification_of_matched(gt: COCO, dt: COCO, top: int = 10) -> dict:
    """Accuracy of the top-scoring detection with IoU >= 0.5 for each ground-truth box."""
    confusions, correct, matched = Counter(), 0, 0
    for image_id in gt.getImgIds():
        gts = gt.loadAnns(gt.getAnnIds(imgIds=image_id))
        dts = dt.loadAnns(dt.getAnnIds(imgIds=image_id))
        if not gts or not dts:
            continue
        ious = mask_utils.iou([d["bbox"] for d in dts], [g["bbox"] for g in gts], [0] * len(gts))
        for j, g in enumerate(gts):
            hits = [i for i in range(len(dts)) if ious[i, j] >= 0.5]
            if not hits:
                continue
            predicted = dts[max(hits, key=lambda i: dts[i]["score"])]["category_id"]
            matched += 1
            correct += predicted == g["category_id"]
            if predicted != g["category_id"]:
                confusions[(gt.cats[g["category_id"]]["name"], gt.cats[predicted]["name"])] += 1
    return {
        "matched_objects": matched,
        "top1_class_accuracy": 100 * correct / max(matched, 1),
        "top_confusions": [{"true": t, "predicted": p, "count": c} for (t, p), c in confusions.most_common(top)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gt_json")
    parser.add_argument("results_json")
    parser.add_argument("--output", default=None, help="where to write the JSON (default: print only)")
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(args.gt_json)
        dt = gt.loadRes(args.results_json)
    report = {
        "with_classes": coco_ap50_ar100(gt, dt, use_cats=True),
        "class_agnostic": coco_ap50_ar100(gt, dt, use_cats=False),
        **classification_of_matched(gt, dt),
    }
    if args.output:
        atomic_write_json(args.output, report, indent=2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
