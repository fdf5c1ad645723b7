"""VOC evaluator: equals Detectron2's on a true VOC folder, hand-computed APs, NaN without GT."""
import math
import os
from unittest import mock

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.pascal_voc import load_voc_instances
from detectron2.evaluation import PascalVOCDetectionEvaluator, pascal_voc_evaluation
from detectron2.structures import Boxes, BoxMode, Instances
from PIL import Image

from dynnet_d2.data.catalog import unregister
from dynnet_d2.data.pascal_voc import register_voc_dataset
from dynnet_d2.evaluation import pascal_voc
from dynnet_d2.evaluation.pascal_voc import (
    IOU_THRESHOLD_PERCENTS,
    DynnetPascalVOCEvaluator,
    voc_metrics,
    voc_per_class_ap,
)

CLASSES = ["bird", "car", "cat", "person"]
NUM_IMAGES = 12


def _instances(boxes, scores, classes, image_size=(100, 100)):
    instances = Instances(image_size)
    instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    instances.scores = torch.tensor(scores, dtype=torch.float32)
    instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return instances


def _write_voc_folder(folder, rng):
    """A true VOC folder (integer 1-based coordinates, every tag Detectron2 parses); returns
    ``{image id: (width, height, [(class, xmin, ymin, xmax, ymax, difficult), ...])}``."""
    os.makedirs(folder / "Annotations")
    os.makedirs(folder / "JPEGImages")
    os.makedirs(folder / "ImageSets" / "Main")
    images = {}
    for i in range(NUM_IMAGES):
        image_id = f"{i:06d}"
        width, height = int(rng.integers(160, 240)), int(rng.integers(120, 200))
        objects = []
        for _ in range(rng.integers(2, 7)):
            xmin, ymin = int(rng.integers(1, width - 40)), int(rng.integers(1, height - 40))
            xmax = min(width, xmin + int(rng.integers(12, 90)))
            ymax = min(height, ymin + int(rng.integers(12, 90)))
            objects.append((CLASSES[rng.integers(len(CLASSES))], xmin, ymin, xmax, ymax,
                            int(rng.random() < 0.15)))
        images[image_id] = (width, height, objects)
        Image.new("RGB", (width, height)).save(folder / "JPEGImages" / f"{image_id}.jpg")
        xml_objects = "".join(
            f"<object><name>{c}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{d}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for c, x0, y0, x1, y1, d in objects
        )
        (folder / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{xml_objects}</annotation>"
        )
    (folder / "ImageSets" / "Main" / "test.txt").write_text("\n".join(images) + "\n")
    return images


def _noisy_predictions(images, rng):
    """``{image id: Instances}``: jittered true boxes (some duplicated, some of a wrong class,
    some missed) and random false positives. Scores are distinct at 3 decimals and coordinates
    are multiples of 0.1, the precisions of Detectron2's text lines."""
    boxes, classes, image_ids = [], [], []
    for image_id, (width, height, objects) in images.items():
        for name, xmin, ymin, xmax, ymax, _ in objects:
            for _ in range(int(rng.random() < 0.85) + int(rng.random() < 0.2)):
                size = np.array([xmax - xmin + 1, ymax - ymin + 1] * 2)
                box = np.array([xmin - 1, ymin - 1, xmax, ymax]) + rng.normal(0, 0.08, 4) * size
                wrong_class = rng.random() < 0.1
                classes.append(int(rng.integers(len(CLASSES))) if wrong_class
                               else CLASSES.index(name))
                boxes.append(box)
                image_ids.append(image_id)
        for _ in range(rng.integers(0, 4)):
            x0, y0 = rng.uniform(0, width - 30), rng.uniform(0, height - 30)
            boxes.append(np.array([x0, y0, x0 + rng.uniform(10, 60), y0 + rng.uniform(10, 60)]))
            classes.append(int(rng.integers(len(CLASSES))))
            image_ids.append(image_id)
    scores = rng.choice(np.arange(1, 1000), size=len(boxes), replace=False) / 1000.0
    predictions = {}
    for image_id, (width, height, _) in images.items():
        mine = [i for i, owner in enumerate(image_ids) if owner == image_id]
        image_boxes = np.round(np.array([boxes[i] for i in mine]).reshape(-1, 4), 1)
        image_boxes[:, 0::2] = np.clip(image_boxes[:, 0::2], 0, width)
        image_boxes[:, 1::2] = np.clip(image_boxes[:, 1::2], 0, height)
        image_boxes[:, 2:] = np.maximum(image_boxes[:, 2:], image_boxes[:, :2] + 1)
        predictions[image_id] = _instances(
            image_boxes, [scores[i] for i in mine], [classes[i] for i in mine], (height, width))
    return predictions


def _run(evaluator, predictions):
    evaluator.reset()
    for image_id, instances in predictions.items():
        evaluator.process([{"image_id": image_id}], [{"instances": instances}])
    return evaluator.evaluate()


@pytest.fixture(scope="module")
def voc_reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("true_voc") / "VOC"
    rng = np.random.default_rng(7)
    images = _write_voc_folder(folder, rng)
    positives = {c: sum(1 for _, _, objects in images.values() for o in objects
                        if o[0] == c and not o[5]) for c in CLASSES}
    # Detectron2's 11 recall points 0.3, 0.6 and 0.7 are 0.1 * k, slightly above k / 10; with
    # a multiple of 5 positives a recall can equal them and the two metrics differ by design.
    assert all(n > 0 and n % 5 for n in positives.values()), positives
    assert any(o[5] for _, _, objects in images.values() for o in objects)
    return folder, _noisy_predictions(images, rng)


def _detectron2_per_class_ap(evaluator, predictions):
    """Detectron2's metrics and its ``{(class, IoU percent): AP percent}`` (from ``voc_eval``)."""
    per_class = {}
    voc_eval = pascal_voc_evaluation.voc_eval

    def recording_voc_eval(detpath, annopath, imagesetfile, classname, ovthresh, use_07_metric):
        rec, prec, ap = voc_eval(detpath, annopath, imagesetfile, classname, ovthresh,
                                 use_07_metric)
        per_class[classname, round(ovthresh * 100)] = ap * 100
        return rec, prec, ap

    with mock.patch.object(pascal_voc_evaluation, "voc_eval", recording_voc_eval):
        results = _run(evaluator, predictions)
    return results, per_class


@pytest.mark.parametrize("year", [2007, 2012])
def test_equals_detectron2_on_true_voc_folder(voc_reference, year):
    folder, predictions = voc_reference
    ours_name, d2_name = f"ref_voc_ours_{year}", f"ref_voc_d2_{year}"
    register_voc_dataset(ours_name, str(folder), "test", CLASSES, year=year)
    unregister(d2_name)
    DatasetCatalog.register(d2_name, lambda: load_voc_instances(str(folder), "test", CLASSES))
    MetadataCatalog.get(d2_name).set(thing_classes=CLASSES, dirname=str(folder), split="test",
                                     year=year)

    d2_results, d2_per_class = _detectron2_per_class_ap(
        PascalVOCDetectionEvaluator(d2_name), predictions)
    evaluator = DynnetPascalVOCEvaluator(ours_name)
    results = _run(evaluator, predictions)

    for name in CLASSES:
        for t, percent in enumerate(IOU_THRESHOLD_PERCENTS):
            assert evaluator.per_class_ap[name][t] * 100 == pytest.approx(
                d2_per_class[name, percent], abs=1e-6), (name, percent)
        assert results["bbox"][f"AP50-{name}"] == pytest.approx(d2_per_class[name, 50], abs=1e-6)
    for key in ("AP", "AP50", "AP75"):
        assert results["bbox"][key] == pytest.approx(d2_results["bbox"][key], abs=1e-6), key
    # The case is not degenerate: imperfect but far from zero, and the two metrics differ.
    assert all(5 < d2_per_class[name, 50] < 99 for name in CLASSES), d2_per_class
    assert 20 < results["bbox"]["AP"] < results["bbox"]["AP50"] < 95


def _dataset(name, dicts, classes, year=2007):
    unregister(name)
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=classes, year=year)


def _gt(image_id, boxes, classes, difficult):
    return {"image_id": image_id, "height": 100, "width": 100, "annotations": [
        {"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "category_id": c, "difficult": d}
        for box, c, d in zip(boxes, classes, difficult)
    ]}


# One class: GTs A and B, difficult D. By score: p1 on A (IoU 0.96), p2 on D (IoU 1, ignored),
# p3 a duplicate on A (IoU 1, A already taken: false positive), p4 on B (IoU 0.62).
HAND_GT = _gt("img", [[0, 0, 10, 10], [40, 0, 50, 10], [20, 0, 30, 10]], [0, 0, 0], [0, 0, 1])
HAND_PREDICTIONS = _instances(
    [[0, 0, 10, 9.6], [20, 0, 30, 10], [0, 0, 10, 10], [40, 0, 50, 6.2]],
    [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 0])


def _eleven_point(recall, precision):
    return sum(max([p for r, p in zip(recall, precision) if r >= k / 10], default=0)
               for k in range(11)) / 11


def _area(recall, precision):
    steps = np.diff([0.0] + recall)
    return sum(step * max(precision[i:]) for i, step in enumerate(steps))


@pytest.mark.parametrize("year", [2007, 2012])
def test_hand_computed_ap(year):
    _dataset("hand_voc", [HAND_GT], ["thing"], year)
    evaluator = DynnetPascalVOCEvaluator("hand_voc")
    results = _run(evaluator, {"img": HAND_PREDICTIONS})["bbox"]
    # 2 positives (D is difficult). Leaving out p2, the sequence is TP, FP, TP while p4's IoU
    # 0.62 passes (thresholds 0.50, 0.55, 0.60: "loose"), then TP, FP, FP ("strict").
    ap = _eleven_point if year == 2007 else _area
    ap_loose = ap([0.5, 0.5, 1.0], [1, 1 / 2, 2 / 3])
    ap_strict = ap([0.5, 0.5, 0.5], [1, 1 / 2, 1 / 3])
    # 11-point: precision 1 at recall points 0..0.5, 2/3 at 0.6..1; area: 0.5 * 1 + 0.5 * 2/3.
    assert (ap_loose, ap_strict) == pytest.approx(
        (28 / 33, 6 / 11) if year == 2007 else (5 / 6, 1 / 2))
    expected = [ap_loose] * 3 + [ap_strict] * 7
    np.testing.assert_allclose(evaluator.per_class_ap["thing"], expected, atol=1e-12)
    assert results == pytest.approx({"AP": 100 * np.mean(expected), "AP50": 100 * ap_loose,
                                     "AP75": 100 * ap_strict, "AP50-thing": 100 * ap_loose})


def test_prediction_takes_best_gt_even_when_taken():
    """VOC devkit rule: a prediction whose highest-IoU GT is already matched is a false positive,
    even if another GT overlaps it above the threshold."""
    dicts = [_gt("img", [[0, 0, 10, 10], [0, 0, 10, 9]], [0, 0], [0, 0])]
    predictions = [{"image_id": "img", "boxes": [[0, 0, 10, 10], [0, 0, 10, 10]],
                    "scores": [0.9, 0.8], "classes": [0, 0]}]
    ap = voc_per_class_ap(dicts, predictions, ["thing"])["thing"]
    assert ap[0] == pytest.approx(6 / 11)  # recall 1/2 at precision 1, then a false positive


def test_recall_points_are_exact_tenths():
    """3 of 5 positives found: recall 0.6 counts for the point 0.6 (Detectron2's 0.1 * 6 misses
    it, which is why the reference test avoids multiples of 5 positives)."""
    dicts = [_gt("img", [[10 * i, 0, 10 * i + 8, 8] for i in range(5)], [0] * 5, [0] * 5)]
    predictions = [{"image_id": "img", "boxes": [[10 * i, 0, 10 * i + 8, 8] for i in range(3)],
                    "scores": [0.9, 0.8, 0.7], "classes": [0, 0, 0]}]
    ap = voc_per_class_ap(dicts, predictions, ["thing"])["thing"]
    assert ap[0] == pytest.approx(7 / 11)
    d2_ap = pascal_voc_evaluation.voc_ap(np.array([0.2, 0.4, 0.6]), np.ones(3), use_07_metric=True)
    assert d2_ap == pytest.approx(6 / 11)


def test_class_without_gt_is_nan_and_not_averaged():
    _dataset("no_gt_voc", [HAND_GT], ["thing", "ghost"])
    predictions = Instances.cat([HAND_PREDICTIONS, _instances([[60, 60, 80, 80]], [0.95], [1])])
    evaluator = DynnetPascalVOCEvaluator("no_gt_voc")
    results = _run(evaluator, {"img": predictions})["bbox"]
    assert np.isnan(evaluator.per_class_ap["ghost"]).all()
    assert math.isnan(results["AP50-ghost"])
    assert results["AP50"] == pytest.approx(100 * 28 / 33)
    assert results["AP"] == pytest.approx(100 * (3 * 28 / 33 + 7 * 6 / 11) / 10)
    assert math.isnan(voc_metrics({"ghost": evaluator.per_class_ap["ghost"]})["AP"])


def test_gathers_predictions_of_all_ranks(voc_reference, monkeypatch):
    folder, predictions = voc_reference
    register_voc_dataset("ddp_voc", str(folder), "test", CLASSES)
    single = _run(DynnetPascalVOCEvaluator("ddp_voc"), predictions)
    image_ids = list(predictions)
    rank0, rank1 = DynnetPascalVOCEvaluator("ddp_voc"), DynnetPascalVOCEvaluator("ddp_voc")
    _run(rank1, {i: predictions[i] for i in image_ids[1::2]})  # rank 1's predictions, kept
    monkeypatch.setattr(pascal_voc.comm, "gather", lambda data, dst: [data, rank1._predictions])
    gathered = _run(rank0, {i: predictions[i] for i in image_ids[::2]})
    assert gathered["bbox"] == pytest.approx(single["bbox"])
    monkeypatch.setattr(pascal_voc.comm, "is_main_process", lambda: False)
    assert _run(rank0, predictions) == {}


def test_unknown_image_id_is_named():
    _dataset("hand_voc", [HAND_GT], ["thing"])
    with pytest.raises(ValueError, match="image_id 'other'"):
        _run(DynnetPascalVOCEvaluator("hand_voc"), {"other": HAND_PREDICTIONS})
