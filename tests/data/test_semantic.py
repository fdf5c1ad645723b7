"""Semantic-segmentation views of the shapes (dynnet_d2/data/semantic.py): label maps from
instance masks by hand and against pycocotools on the data, written once and deterministic, and
evaluated by Detectron2's SemSegEvaluator through our evaluator builder."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image
from pycocotools import mask as mask_util

import dynnet_d2  # noqa: F401  (registers the datasets)
from dynnet_d2.config import get_dynnet_cfg
from dynnet_d2.data import synthetic
from dynnet_d2.data.semantic import SEMANTIC_CLASSES, label_map, semantic_dir
from dynnet_d2.evaluation import build_evaluator


def test_label_map_by_hand():
    big = {"segmentation": [[0, 0, 6, 0, 6, 4, 0, 4]], "category_id": 3}  # 6 x 4 box
    small = {"segmentation": [[2, 1, 4, 1, 4, 3, 2, 3]], "category_id": 7}  # 2 x 2 inside it
    labels = label_map([small, big], height=5, width=8)  # the larger one is painted first
    expected = np.zeros((5, 8), np.uint8)
    expected[0:4, 0:6] = 3
    expected[1:3, 2:4] = 7
    np.testing.assert_array_equal(labels, expected)


def test_views_match_the_instance_masks_and_are_written_once():
    records = DatasetCatalog.get("shapes_sem_test")
    meta = MetadataCatalog.get("shapes_sem_test")
    assert meta.stuff_classes == SEMANTIC_CLASSES and len(SEMANTIC_CLASSES) == 21
    assert meta.evaluator_type == "sem_seg" and meta.ignore_label == 255
    coco = json.loads(synthetic.coco_json_path("test").read_text())
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    checked = 0
    for record in records:
        labels = np.array(Image.open(record["sem_seg_file_name"]))
        assert labels.shape == (record["height"], record["width"])
        anns = by_image.get(record["image_id"], [])
        covered = np.zeros_like(labels, bool)
        for ann in anns:
            rle = mask_util.merge(mask_util.frPyObjects(ann["segmentation"], *labels.shape))
            mask = mask_util.decode(rle).astype(bool)
            covered |= mask
            # an instance's pixels carry its class, or a smaller instance's painted over it
            values = set(np.unique(labels[mask]))
            assert ann["category_id"] in values or values <= {a["category_id"] for a in anns}
        assert (labels[~covered] == 0).all() and (labels[covered] > 0).all()
        checked += len(anns)
    assert checked > 0
    path = Path(records[0]["sem_seg_file_name"])
    before = path.read_bytes()
    path.unlink()
    DatasetCatalog.get("shapes_sem_test")  # remade, the same bytes
    assert path.read_bytes() == before
    assert path.parent == semantic_dir("test")


def test_semseg_evaluator_scores_perfect_and_background_predictions(tmp_path):
    cfg = get_dynnet_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    records = DatasetCatalog.get("shapes_sem_val")[:3]

    def evaluate(predict):
        evaluator = build_evaluator(cfg, "shapes_sem_val")
        evaluator.reset()
        for record in records:
            labels = torch.from_numpy(np.array(Image.open(record["sem_seg_file_name"]))).long()
            logits = torch.nn.functional.one_hot(predict(labels), 21).permute(2, 0, 1).float()
            evaluator.process([record], [{"sem_seg": logits}])
        return evaluator.evaluate()["sem_seg"]

    perfect = evaluate(lambda labels: labels)
    assert perfect["mIoU"] == pytest.approx(100.0) and perfect["pACC"] == pytest.approx(100.0)
    background = evaluate(torch.zeros_like)
    assert background["IoU-background"] < 100.0 and background["mIoU"] < 10.0


def test_views_of_data_without_masks_are_refused(tmp_path, monkeypatch):
    from dynnet_d2.data import semantic
    from dynnet_d2.data.errors import DatasetFormatError

    record = {"file_name": "images/a.jpg", "height": 4, "width": 4, "image_id": 1,
              "annotations": [{"bbox": [0, 0, 2, 2], "category_id": 1}]}
    monkeypatch.setattr(semantic, "ensure_shapes", lambda root: None)
    monkeypatch.setattr(semantic, "load_coco_json", lambda *args: [record])
    monkeypatch.setattr(semantic, "semantic_dir", lambda split, root: tmp_path)
    with pytest.raises(DatasetFormatError, match=r"instances_test.json, image 'images/a.jpg': "
                                                 r"an annotation has no segmentation"):
        semantic.load_shapes_semantic("test")
    assert not list(tmp_path.iterdir())  # no label map written
