"""Localization vs classification error split against hand-computed cases."""
import json

import pytest
from pycocotools.coco import COCO

from dynnet_d2.evaluation import detection_errors as analyze

GT = {
    "images": [{"id": 1, "width": 100, "height": 100}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400,
         "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 50, 30, 30], "area": 900,
         "iscrowd": 0},
    ],
}


def _coco(tmp_path, detections):
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    gt = COCO(str(tmp_path / "gt.json"))
    return gt, gt.loadRes(detections)


def test_wrong_class_is_a_classification_error_not_a_localization_error(tmp_path):
    detections = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.9},
                  {"image_id": 1, "category_id": 1, "bbox": [50, 50, 30, 30], "score": 0.8}]
    gt, dt = _coco(tmp_path, detections)
    assert analyze.coco_ap50_ar100(gt, dt, use_cats=False)["AP50"] == pytest.approx(100.0)
    assert analyze.coco_ap50_ar100(gt, dt, use_cats=True)["AP50"] == pytest.approx(50.0)
    report = analyze.classification_of_matched(gt, dt)
    assert report["matched_objects"] == 2
    assert report["top1_class_accuracy"] == pytest.approx(50.0)
    assert report["top_confusions"] == [{"true": "b", "predicted": "a", "count": 1}]
