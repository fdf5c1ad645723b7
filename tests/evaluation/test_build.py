"""Evaluator chosen from metadata; each export + Detectron2 evaluator scores perfect
predictions 100."""
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, LVISEvaluator
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks

from dynnet_d2 import get_dynnet_cfg
from dynnet_d2.evaluation import build_evaluator
from dynnet_d2.evaluation.pascal_voc import DynnetPascalVOCEvaluator


def _perfect_predictions(d, drop_class=None):
    anns = [a for a in d["annotations"] if a["category_id"] != drop_class]
    h, w = d["height"], d["width"]
    inst = Instances((h, w))
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.ones(len(anns))
    inst.pred_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
    if anns and "segmentation" in anns[0]:
        inst.pred_masks = BitMasks.from_polygon_masks(
            PolygonMasks([a["segmentation"] for a in anns]), h, w).tensor
    else:
        inst.pred_masks = torch.zeros((len(anns), h, w), dtype=torch.bool)
    return inst


def _evaluate(name, tmp_path, drop_class=None):
    cfg = get_dynnet_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    evaluator = build_evaluator(cfg, name)
    evaluator.reset()
    for d in DatasetCatalog.get(name):
        inputs = [{k: d[k] for k in ("file_name", "image_id", "height", "width")}]
        evaluator.process(inputs, [{"instances": _perfect_predictions(d, drop_class)}])
    return evaluator, evaluator.evaluate()


@pytest.mark.parametrize("name,cls", [
    ("shapes_test", COCOEvaluator), ("shapes_voc_test", DynnetPascalVOCEvaluator),
    ("shapes_lvis_val", LVISEvaluator), ("shapes_test_novel1", COCOEvaluator),
])
def test_perfect_predictions_score_100(name, cls, tmp_path):
    evaluator, results = _evaluate(name, tmp_path)
    assert isinstance(evaluator, cls)
    if cls is DynnetPascalVOCEvaluator:
        # Classes without ground truth (the tiny test set may lack some) are left out of the mean.
        assert results["bbox"]["AP50"] == pytest.approx(100.0)
        assert results["bbox"]["AP"] == pytest.approx(100.0)
    else:
        assert results["bbox"]["AP50"] == pytest.approx(100.0)
        assert results["bbox"]["AP"] == pytest.approx(100.0)
        assert results["segm"]["AP"] == pytest.approx(100.0, abs=0.5)


def test_one_class_never_detected_gives_hand_computed_ap(tmp_path):
    dicts = DatasetCatalog.get("shapes_test")
    present = {a["category_id"] for d in dicts for a in d["annotations"]}
    dropped = min(present)
    _, results = _evaluate("shapes_test", tmp_path, drop_class=dropped)
    # COCO AP is the mean over classes with ground truth: the dropped class scores 0, the rest 100.
    assert results["bbox"]["AP"] == pytest.approx(100.0 * (len(present) - 1) / len(present))
    name = MetadataCatalog.get("shapes_test").thing_classes[dropped]
    assert results["bbox"][f"AP-{name}"] == pytest.approx(0.0)


def test_subset_metadata_and_category_mapping():
    meta = MetadataCatalog.get("shapes_test_all1")
    assert meta.thing_classes == list(meta.base_classes) + list(meta.novel_classes)
    novel = DatasetCatalog.get("shapes_test_novel1")
    assert all(0 <= a["category_id"] < 5 for d in novel for a in d["annotations"])
    full = DatasetCatalog.get("shapes_test")
    assert len(novel) == len(full)  # test sets keep images without a kept object


def test_unknown_evaluator_type_is_named(tmp_path):
    DatasetCatalog.register("no_eval_type_ds", lambda: [])
    cfg = get_dynnet_cfg()
    with pytest.raises(ValueError, match="no_eval_type_ds.*evaluator_type=None"):
        build_evaluator(cfg, "no_eval_type_ds")
