"""COCO files whose annotation ids start at 0 (or repeat) evaluate correctly, file untouched."""
import json
import logging

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, Instances

from dynnet_d2.config import get_dynnet_cfg
from dynnet_d2.data import register_coco_json_dataset
from dynnet_d2.evaluation import build_evaluator


def _dataset(ids):
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 50, "width": 60},
                   {"id": 2, "file_name": "b.jpg", "height": 50, "width": 60}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": ids[0], "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400,
             "iscrowd": 0},
            {"id": ids[1], "image_id": 1, "category_id": 2, "bbox": [30, 10, 20, 25], "area": 500,
             "iscrowd": 0},
            {"id": ids[2], "image_id": 2, "category_id": 1, "bbox": [10, 20, 30, 15], "area": 450,
             "iscrowd": 0},
        ],
    }


def _perfect(d):
    inst = Instances((d["height"], d["width"]))
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.ones(len(boxes))
    inst.pred_classes = torch.tensor([a["category_id"] for a in d["annotations"]])
    return inst


@pytest.mark.parametrize("ids", [(0, 1, 2), (1, 2, 3), (7, 7, 8)],
                         ids=["from_0", "from_1", "repeated"])
def test_perfect_detections_score_100_whatever_the_annotation_ids(tmp_path, ids, caplog):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(_dataset(ids)))
    before = path.read_bytes()
    register_coco_json_dataset("ids_ds", str(path), str(tmp_path))
    cfg = get_dynnet_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    with caplog.at_level(logging.WARNING, logger="dynnet_d2"):
        evaluator = build_evaluator(cfg, "ids_ds")
    evaluator.reset()
    for d in DatasetCatalog.get("ids_ds"):
        evaluator.process([{k: d[k] for k in ("file_name", "image_id", "height", "width")}],
                          [{"instances": _perfect(d)}])
    results = evaluator.evaluate()
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["bbox"]["AP-a"] == pytest.approx(100.0)
    assert path.read_bytes() == before, "the user's file must never be modified"
    renumbered = "renumbered 1..3" in caplog.text
    assert renumbered == (ids != (1, 2, 3))
