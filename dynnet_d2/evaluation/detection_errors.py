"""Split a detector's error into localization and classification.

Given COCO ground truth and detections (pycocotools objects): COCO AP50 and AR@100 with and
without categories (``useCats=0``: a box is right wherever it is, whatever its class), the share
of matched objects (IoU >= 0.5 with some detection) whose top-scoring matching detection has the
right class, and the most frequent (true -> predicted) confusions.
"""
import contextlib
import io
from collections import Counter

from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


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
        "top_confusions": [{"true": t, "predicted": p, "count": c}
                           for (t, p), c in confusions.most_common(top)],
    }


def detection_error_report(gt: COCO, dt: COCO) -> dict:
    """AP50/AR100 with and without classes, and the classification of matched objects."""
    return {
        "with_classes": coco_ap50_ar100(gt, dt, use_cats=True),
        "class_agnostic": coco_ap50_ar100(gt, dt, use_cats=False),
        **classification_of_matched(gt, dt),
    }
