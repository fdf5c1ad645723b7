"""Generalized few-shot Pascal VOC and LVIS evaluation: bAP* and nAP* from the one evaluation
equal the reference run separately on each class subset (our VOC AP per subset; lvis-api's
LVISEval with params.cat_ids = the subset), and LVISEval's evaluate() runs once per task."""
import json
from unittest import mock

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import LVISEvaluator
from lvis import LVIS, LVISEval, LVISResults

from dynnet_d2 import get_dynnet_cfg
from dynnet_d2.data.catalog import unregister
from dynnet_d2.data.synthetic import base_classes, novel_classes
from dynnet_d2.evaluation import build_evaluator
from dynnet_d2.evaluation.lvis import DynnetLVISEvaluator
from dynnet_d2.evaluation.pascal_voc import DynnetPascalVOCEvaluator, voc_metrics, voc_per_class_ap

from .test_generalized_coco import SUBSET_KEYS, assert_same_numbers, run_evaluator

SPLIT = 1


def _register_fewshot_view(name, source):
    """``name``: the images and classes of the registered ``source``, plus base / novel classes
    of few-shot split 1."""
    unregister(name)
    DatasetCatalog.register(name, lambda: DatasetCatalog.get(source))
    metadata = MetadataCatalog.get(source).as_dict()
    metadata.pop("name")
    MetadataCatalog.get(name).set(**metadata, base_classes=base_classes(SPLIT),
                                  novel_classes=novel_classes(SPLIT))
    return name


def _cfg(tmp_path):
    cfg = get_dynnet_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    return cfg


# --------------------------------------------------------------------------- Pascal VOC


def _restricted(dicts, predictions, classes, names):
    """Dataset dicts and prediction records keeping only the classes ``names``, renumbered."""
    new_id = {classes.index(name): i for i, name in enumerate(names)}
    kept_dicts = [dict(d, annotations=[dict(a, category_id=new_id[a["category_id"]])
                                       for a in d["annotations"] if a["category_id"] in new_id])
                  for d in dicts]
    kept_predictions = []
    for record in predictions:
        keep = [i for i, c in enumerate(record["classes"]) if int(c) in new_id]
        kept_predictions.append({
            "image_id": record["image_id"], "boxes": record["boxes"][keep],
            "scores": record["scores"][keep],
            "classes": [new_id[int(c)] for c in record["classes"][keep]],
        })
    return kept_dicts, kept_predictions


def test_voc_subset_metrics_equal_voc_ap_run_on_each_subset():
    name = _register_fewshot_view("shapes_voc_test_fewshot1", "shapes_voc_test")
    evaluator = build_evaluator(get_dynnet_cfg(), name)
    assert isinstance(evaluator, DynnetPascalVOCEvaluator)
    results = run_evaluator(evaluator, name, with_masks=False)["bbox"]
    predictions = evaluator._predictions
    meta = MetadataCatalog.get(name)
    classes = list(meta.thing_classes)
    assert classes != list(meta.base_classes) + list(meta.novel_classes)  # subsets interleave
    dicts = DatasetCatalog.get(name)
    expected = {}
    for prefix, names in (("", classes), ("b", meta.base_classes), ("n", meta.novel_classes)):
        subset = voc_metrics(voc_per_class_ap(*_restricted(dicts, predictions, classes, names),
                                              names))
        expected.update({prefix + k: subset[k] for k in ("AP", "AP50", "AP75")})
    assert_same_numbers({k: results[k] for k in expected}, expected)
    assert len({round(results[k], 6) for k in ("AP", "bAP", "nAP")}) == 3
    assert 5 < results["nAP"] < 95 and 5 < results["bAP"] < 95


def test_voc_without_subsets_reports_none():
    evaluator = build_evaluator(get_dynnet_cfg(), "shapes_voc_test")
    results = run_evaluator(evaluator, "shapes_voc_test", with_masks=False)["bbox"]
    assert not set(SUBSET_KEYS) & set(results)


# --------------------------------------------------------------------------- LVIS


def _lvis_reference(gt, detections, task, category_ids):
    """lvis-api on ``category_ids`` only: AP, AP50, AP75 in percent, as Detectron2 scales them."""
    detections = [{k: v for k, v in r.items() if not (task == "segm" and k == "bbox")}
                  for r in detections]
    lvis_eval = LVISEval(gt, LVISResults(gt, detections, max_dets=300), task)
    lvis_eval.params.cat_ids = sorted(category_ids)
    lvis_eval.run()
    return {k: float(lvis_eval.get_results()[k] * 100) for k in ("AP", "AP50", "AP75")}


@pytest.fixture(scope="module")
def lvis_fewshot(tmp_path_factory):
    name = _register_fewshot_view("shapes_lvis_val_fewshot1", "shapes_lvis_val")
    tmp_path = tmp_path_factory.mktemp("lvis")
    evaluator = build_evaluator(_cfg(tmp_path), name)
    assert isinstance(evaluator, DynnetLVISEvaluator)
    with mock.patch.object(LVISEval, "evaluate", autospec=True,
                           side_effect=LVISEval.evaluate) as evaluate:
        results = run_evaluator(evaluator, name)
    output = tmp_path / "inference" / name / "lvis_instances_results.json"
    return name, results, json.loads(output.read_text()), evaluate.call_count


@pytest.mark.parametrize("task", ["bbox", "segm"])
def test_lvis_subset_metrics_equal_lvis_eval_restricted_to_each_subset(lvis_fewshot, task):
    name, results, detections, _ = lvis_fewshot
    meta = MetadataCatalog.get(name)
    gt = LVIS(meta.json_file)
    id_of = {c["name"]: c["id"] for c in gt.dataset["categories"]}
    expected = {}
    for prefix, names in (("", meta.thing_classes), ("b", meta.base_classes),
                          ("n", meta.novel_classes)):
        subset = _lvis_reference(gt, detections, task, [id_of[n] for n in names])
        expected.update({prefix + k: v for k, v in subset.items()})
    assert_same_numbers({k: results[task][k] for k in expected}, expected)
    assert len({round(results[task][k], 6) for k in ("AP", "bAP", "nAP")}) == 3
    assert 5 < results[task]["nAP"] < 95 and 5 < results[task]["bAP"] < 95


def test_lvis_evaluates_once_per_task_and_keeps_detectron2_metrics(lvis_fewshot, tmp_path):
    name, results, _, evaluate_calls = lvis_fewshot
    assert evaluate_calls == 2  # bbox, segm
    detectron2_results = run_evaluator(LVISEvaluator(name, output_dir=str(tmp_path)), name)
    for task in ("bbox", "segm"):
        assert set(detectron2_results[task]) == {
            "AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"}
        assert_same_numbers({k: results[task][k] for k in detectron2_results[task]},
                            detectron2_results[task])
        assert set(results[task]) == set(detectron2_results[task]) | set(SUBSET_KEYS)


def test_lvis_without_subsets_reports_none(tmp_path):
    evaluator = build_evaluator(_cfg(tmp_path), "shapes_lvis_val")
    results = run_evaluator(evaluator, "shapes_lvis_val")
    assert not set(SUBSET_KEYS) & set(results["bbox"])
