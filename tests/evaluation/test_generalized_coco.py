"""Generalized few-shot COCO evaluation: AP of all classes, bAP* of the base and nAP* of the novel
classes from one COCOeval per task, equal to pycocotools run separately on each class subset;
faster-coco-eval is the engine and gives pycocotools' numbers."""
import contextlib
import io
import json
import math
from unittest import mock

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import coco_evaluation
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks
from faster_coco_eval import COCOeval_faster
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dynnet_d2 import get_dynnet_cfg
from dynnet_d2.evaluation import build_evaluator
from dynnet_d2.evaluation.build import partial_mask_subsets
from dynnet_d2.evaluation.coco import DynnetCOCOEvaluator, summarize_categories

SUBSET_KEYS = ("bAP", "bAP50", "bAP75", "nAP", "nAP50", "nAP75")


def noisy_instances(record, num_classes, rng, with_masks=True):
    """Detections of one dataset dict: jittered true boxes (some missed, some duplicated, some
    of a wrong class) and random false positives; masks are the true ones shifted (rectangles
    for false positives). Scores are random."""
    height, width = record["height"], record["width"]
    boxes, classes, masks = [], [], []
    for annotation in record["annotations"]:
        box = np.array(BoxMode.convert(annotation["bbox"], annotation["bbox_mode"],
                                       BoxMode.XYXY_ABS), dtype=np.float64)
        true_mask = (BitMasks.from_polygon_masks(
            PolygonMasks([annotation["segmentation"]]), height, width).tensor[0].numpy()
            if with_masks else None)
        for _ in range(int(rng.random() < 0.8) + int(rng.random() < 0.15)):
            size = np.tile(box[2:] - box[:2], 2)
            boxes.append(box + rng.normal(0, 0.06, 4) * size)
            wrong_class = rng.random() < 0.15
            classes.append(int(rng.integers(num_classes)) if wrong_class
                           else annotation["category_id"])
            if with_masks:
                shift = rng.integers(-3, 4, size=2)
                masks.append(np.roll(true_mask, tuple(shift), axis=(0, 1)))
    for _ in range(int(rng.integers(0, 4))):
        x0, y0 = rng.uniform(0, width - 20), rng.uniform(0, height - 20)
        boxes.append(np.array([x0, y0, x0 + rng.uniform(8, 60), y0 + rng.uniform(8, 60)]))
        classes.append(int(rng.integers(num_classes)))
        if with_masks:
            mask = np.zeros((height, width), dtype=bool)
            x0, y0, x1, y1 = np.round(boxes[-1]).astype(int)
            mask[y0:y1, x0:x1] = True
            masks.append(mask)
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    instances = Instances((height, width))
    instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    instances.scores = torch.tensor(rng.uniform(0.05, 1.0, len(boxes)), dtype=torch.float32)
    instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
    if with_masks:
        instances.pred_masks = torch.from_numpy(
            np.array(masks, dtype=bool).reshape(-1, height, width))
    return instances


def run_evaluator(evaluator, dataset_name, seed=0, with_masks=True):
    """Feed ``evaluator`` seeded noisy detections of every image of ``dataset_name``."""
    rng = np.random.default_rng(seed)
    num_classes = len(MetadataCatalog.get(dataset_name).thing_classes)
    evaluator.reset()
    for record in DatasetCatalog.get(dataset_name):
        inputs = [{k: record[k] for k in ("file_name", "image_id", "height", "width")}]
        evaluator.process(inputs, [{"instances": noisy_instances(
            record, num_classes, rng, with_masks)}])
    return evaluator.evaluate()


def assert_same_numbers(actual, expected):
    """Equal up to float rounding; NaN equals NaN."""
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def _evaluate(dataset_name, tmp_path, **kwargs):
    evaluator = DynnetCOCOEvaluator(dataset_name, output_dir=str(tmp_path), **kwargs)
    return evaluator, run_evaluator(evaluator, dataset_name)


def _results_for(task, detections):
    """A copy (loadRes adds keys) of the detections as Detectron2 evaluates ``task``: without
    boxes for segm, so that the mask area decides the size range."""
    return [{k: v for k, v in r.items() if not (task == "segm" and k == "bbox")}
            for r in detections]


def _pycocotools_stats(gt, results, task, category_ids):
    """pycocotools' COCOeval on ``category_ids`` only: (AP, AP50, AP75) in percent (NaN for -1)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(gt, gt.loadRes(_results_for(task, results)), task)
        coco_eval.params.catIds = list(category_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return [float(s * 100) if s >= 0 else float("nan") for s in coco_eval.stats[:3]]


@pytest.fixture(scope="module")
def all1(tmp_path_factory):
    """shapes_test_all1 (base then novel classes, JSON ids in another order) evaluated once."""
    tmp_path = tmp_path_factory.mktemp("all1")
    evaluator, results = _evaluate("shapes_test_all1", tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(evaluator._metadata.json_file)
    detections = json.loads((tmp_path / "coco_instances_results.json").read_text())
    return results, gt, detections


@pytest.mark.parametrize("task", ["bbox", "segm"])
def test_every_number_equals_pycocotools_run_on_each_subset(all1, task):
    results, gt, detections = all1
    meta = MetadataCatalog.get("shapes_test_all1")
    id_of = {c["name"]: c["id"] for c in gt.dataset["categories"]}
    expected = {}
    for prefix, names in (("", meta.thing_classes), ("b", meta.base_classes),
                          ("n", meta.novel_classes)):
        stats = _pycocotools_stats(gt, detections, task, sorted(id_of[n] for n in names))
        expected.update({prefix + k: v for k, v in zip(("AP", "AP50", "AP75"), stats)})
    for name in meta.thing_classes:  # per-class AP, named by the class it belongs to
        expected[f"AP-{name}"] = _pycocotools_stats(gt, detections, task, [id_of[name]])[0]
    assert_same_numbers({k: results[task][k] for k in expected}, expected)
    # The subsets are distinct and noisy, so a mix-up would show.
    assert len({round(results[task][k], 6) for k in ("AP", "bAP", "nAP")}) == 3
    assert 5 < results[task]["nAP"] < 95 and 5 < results[task]["bAP"] < 95


def test_per_class_ap_is_named_after_its_class_in_base_then_novel_order(tmp_path):
    """Detectron2 alone names the k-th category's AP after thing_classes[k], wrong when the
    class order is not the JSON ids' (it called triangle's AP "AP-pentagon")."""
    meta = MetadataCatalog.get("shapes_test_all1")
    dropped = meta.thing_classes.index("triangle")
    id_map = meta.thing_dataset_id_to_contiguous_id
    assert id_map[sorted(id_map)[dropped]] != dropped  # COCOeval's k-th category is another
    evaluator = build_evaluator(_cfg(tmp_path), "shapes_test_all1")
    evaluator.reset()
    for record in DatasetCatalog.get("shapes_test_all1"):
        anns = [a for a in record["annotations"] if a["category_id"] != dropped]
        instances = Instances((record["height"], record["width"]))
        instances.pred_boxes = Boxes(torch.tensor(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns],
            dtype=torch.float32).reshape(-1, 4))
        instances.scores = torch.ones(len(anns))
        instances.pred_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
        evaluator.process([{k: record[k] for k in ("image_id", "height", "width")}],
                          [{"instances": instances}])
    bbox = evaluator.evaluate()["bbox"]
    below_100 = {k for k, v in bbox.items() if k.startswith("AP-") and v < 99.9}
    assert below_100 == {"AP-triangle"}
    assert bbox["bAP"] == pytest.approx(100.0) and bbox["nAP"] < 100.0


def _cfg(tmp_path):
    cfg = get_dynnet_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    return cfg


def test_faster_coco_eval_is_the_engine_and_matches_pycocotools(tmp_path):
    faster_evaluator = build_evaluator(_cfg(tmp_path / "faster"), "shapes_test_all1")
    assert faster_evaluator._cocoeval is COCOeval_faster
    faster = run_evaluator(faster_evaluator, "shapes_test_all1")
    official_evaluator = DynnetCOCOEvaluator("shapes_test_all1", output_dir=str(tmp_path / "py"),
                                             use_fast_impl=False)
    assert official_evaluator._cocoeval is COCOeval
    official = run_evaluator(official_evaluator, "shapes_test_all1")
    for task in ("bbox", "segm"):
        assert_same_numbers(faster[task], official[task])
        assert set(SUBSET_KEYS) <= set(faster[task])


@pytest.mark.parametrize("use_fast_impl,engine", [(True, COCOeval_faster), (False, COCOeval)])
def test_per_image_evaluation_runs_once_per_task(tmp_path, use_fast_impl, engine):
    evaluator = DynnetCOCOEvaluator("shapes_test_all1", output_dir=str(tmp_path),
                                    use_fast_impl=use_fast_impl)
    original_opt = coco_evaluation.COCOeval_opt
    with mock.patch.object(engine, "evaluate", autospec=True,
                           side_effect=engine.evaluate) as evaluate, \
            mock.patch.object(engine, "accumulate", autospec=True,
                              side_effect=engine.accumulate) as accumulate:
        results = run_evaluator(evaluator, "shapes_test_all1")
    assert evaluate.call_count == 2 and accumulate.call_count == 2  # bbox, segm
    assert {type(call.args[0]) for call in evaluate.call_args_list} == {engine}
    assert all(set(SUBSET_KEYS) <= set(results[task]) for task in ("bbox", "segm"))
    assert coco_evaluation.COCOeval_opt is original_opt  # restored after the evaluation


def test_faster_coco_eval_accumulates_what_pycocotools_does(all1):
    """The engine itself, array by array, on noisy boxes and masks."""
    _, gt, detections = all1
    for task in ("bbox", "segm"):
        evaluated = []
        for engine in (COCOeval, COCOeval_faster):
            with contextlib.redirect_stdout(io.StringIO()):
                coco_eval = engine(gt, gt.loadRes(_results_for(task, detections)), task)
                coco_eval.evaluate()
                coco_eval.accumulate()
                coco_eval.summarize()
            evaluated.append(coco_eval)
        reference, faster = evaluated
        np.testing.assert_allclose(faster.stats, reference.stats, rtol=0, atol=1e-12)
        np.testing.assert_allclose(faster.eval["precision"], reference.eval["precision"],
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(faster.eval["recall"], reference.eval["recall"],
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("engine", [COCOeval, COCOeval_faster])
def test_subset_summary_leaves_the_evaluation_as_it_was(all1, engine):
    _, gt, detections = all1
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = engine(gt, gt.loadRes(_results_for("bbox", detections)), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    accumulated, stats = coco_eval.eval, np.array(coco_eval.stats)
    precision = accumulated["precision"].copy()
    subset = [1, 4, 9]
    expected = _pycocotools_stats(gt, detections, "bbox",
                                  [coco_eval.params.catIds[k] for k in subset])
    np.testing.assert_allclose(summarize_categories(coco_eval, subset)[:3] * 100, expected,
                               rtol=1e-12)
    assert coco_eval.eval is accumulated and np.array_equal(accumulated["precision"], precision)
    np.testing.assert_array_equal(coco_eval.stats, stats)


@pytest.mark.parametrize("name,reported", [
    ("shapes_test_base1", {"b"}), ("shapes_test_novel1", {"n"}), ("shapes_test", set()),
])
def test_only_subsets_among_the_classes_are_reported(tmp_path, name, reported):
    _, results = _evaluate(name, tmp_path)
    for task in ("bbox", "segm"):
        present = {key[0] for key in SUBSET_KEYS if key in results[task]}
        assert present == reported
        for prefix in reported:  # the subset is every class of the dataset
            for metric in ("AP", "AP50", "AP75"):
                assert results[task][prefix + metric] == pytest.approx(results[task][metric])


def process_no_detections(evaluator, dataset: str, masks: bool = False) -> None:
    """Feed ``evaluator`` (reset) two images of ``dataset`` without a single detection."""
    evaluator.reset()
    for record in DatasetCatalog.get(dataset)[:2]:
        instances = Instances((record["height"], record["width"]))
        instances.pred_boxes = Boxes(torch.zeros((0, 4)))
        instances.scores = torch.zeros(0)
        instances.pred_classes = torch.zeros(0, dtype=torch.int64)
        if masks:
            instances.pred_masks = torch.zeros((0, record["height"], record["width"]))
        evaluator.process([{"image_id": record["image_id"]}], [{"instances": instances}])


def test_no_predictions_give_nan_subset_metrics(tmp_path):
    evaluator = DynnetCOCOEvaluator("shapes_test_all1", output_dir=str(tmp_path))
    process_no_detections(evaluator, "shapes_test_all1")
    results = evaluator.evaluate()
    assert all(math.isnan(results["bbox"][key]) for key in SUBSET_KEYS)


def test_a_mask_model_without_any_detection_keeps_every_task_and_says_why(tmp_path, caplog):
    cfg = get_dynnet_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.DATASETS.TRAIN = ("shapes_train_masks_base1",)
    evaluator = build_evaluator(cfg, "shapes_test_all1")
    process_no_detections(evaluator, "shapes_test_all1", masks=True)
    with caplog.at_level("WARNING"):
        results = evaluator.evaluate()
    # Detectron2 infers the tasks from the predictions: with none, segm (and its subsets) went
    assert set(results) == {"bbox", "segm", "bbox_novel", "segm_novel", "bbox_base", "segm_base"}
    assert all(math.isnan(v) for v in results["segm"].values() if isinstance(v, float))
    assert "No detection on any image of shapes_test_all1" in caplog.text


def test_task_subsets_equal_pycocotools_on_each_subset(tmp_path):
    """Partially supervised evaluation (ShapeProp): segm_novel / segm_base (and bbox_*) are
    pycocotools run on the held-out-mask and the seen classes."""
    meta = MetadataCatalog.get("shapes_test_all1")
    subsets = {"novel": list(meta.novel_classes), "base": list(meta.base_classes)}
    evaluator, results = _evaluate("shapes_test_all1", tmp_path, task_subsets=subsets)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(meta.json_file)
    detections = json.loads((tmp_path / "coco_instances_results.json").read_text())
    id_of = {c["name"]: c["id"] for c in gt.dataset["categories"]}
    for task in ("bbox", "segm"):
        for name, names in subsets.items():
            stats = _pycocotools_stats(gt, detections, task, sorted(id_of[n] for n in names))
            assert_same_numbers(results[f"{task}_{name}"], dict(zip(("AP", "AP50", "AP75"),
                                                                    stats)))
    assert results["segm_novel"]["AP"] != results["segm_base"]["AP"]


def test_partial_mask_training_data_selects_the_subsets():
    cfg = get_dynnet_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.DATASETS.TRAIN = ("shapes_train_masks_base1",)
    meta = MetadataCatalog.get("shapes_test_all1")
    subsets = partial_mask_subsets(cfg, "shapes_test_all1")
    assert sorted(subsets["base"]) == sorted(meta.base_classes)
    assert sorted(subsets["novel"]) == sorted(meta.novel_classes)
    cfg.DATASETS.TRAIN = ("shapes_train_masks_10pct_seed0",)  # image-wise: no class subsets
    assert partial_mask_subsets(cfg, "shapes_test_all1") == {}
    cfg.DATASETS.TRAIN = ("shapes_train_masks_base1",)
    cfg.MODEL.MASK_ON = False
    assert partial_mask_subsets(cfg, "shapes_test_all1") == {}


def test_the_mask_classes_config_key_selects_the_subsets_too():
    cfg = get_dynnet_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.DATASETS.TRAIN = ("shapes_train",)
    meta = MetadataCatalog.get("shapes_test_all1")
    cfg.DATASETS.TRAIN_MASK_CLASSES = list(meta.novel_classes)
    subsets = partial_mask_subsets(cfg, "shapes_test_all1")
    assert sorted(subsets["base"]) == sorted(meta.novel_classes)  # "base": had masks
    assert sorted(subsets["novel"]) == sorted(meta.base_classes)
