"""DynnetClassificationEvaluator against a hand-computed example of six images and seven classes."""
import pytest
import torch
from detectron2.evaluation import print_csv_format

from dynnet_d2.config import get_dynnet_cfg
from dynnet_d2.data.catalog import register
from dynnet_d2.evaluation import DynnetClassificationEvaluator, build_evaluator
from dynnet_d2.evaluation import classification as classification_module

CLASSES = ["a", "b", "c", "d", "e", "f", "g"]
# (label, rank of the label among the scores: 0 = best, gflops)
IMAGES = [(0, 0, 1.0), (1, 1, 2.0), (2, 0, 0.5), (2, 5, 0.5), (3, 4, 3.0), (0, 6, 1.0)]


@pytest.fixture(scope="module", autouse=True)
def dataset():
    register("cls_eval_toy", lambda: [], thing_classes=CLASSES, evaluator_type="classification")


def _scores(label: int, rank: int) -> torch.Tensor:
    """Probabilities (7 - r) / 28 for the class at rank r; the label sits at ``rank``."""
    order = [c for c in range(len(CLASSES)) if c != label]
    order.insert(rank, label)
    scores = torch.zeros(len(CLASSES))
    for r, c in enumerate(order):
        scores[c] = (7 - r) / 28
    return scores


def _batches(with_gflops=True):
    pairs = [({"label": y, "image_id": i}, {"scores": _scores(y, r), **(
        {"gflops": g} if with_gflops else {})}) for i, (y, r, g) in enumerate(IMAGES)]
    return [list(zip(*pairs[:3])), list(zip(*pairs[3:]))]


def _evaluate(evaluator, batches):
    evaluator.reset()
    for inputs, outputs in batches:
        evaluator.process(inputs, outputs)
    return evaluator.evaluate()


def test_metrics_by_hand():
    results = _evaluate(build_evaluator(get_dynnet_cfg(), "cls_eval_toy"), _batches())
    m = results["classification"]
    # top-1 right: images 0 and 2; top-5 right: also 1 (rank 1) and 4 (rank 4), not 3 or 5.
    assert m["top1"] == pytest.approx(100 * 2 / 6)
    assert m["top5"] == pytest.approx(100 * 4 / 6)
    # a: images 0 (right), 5 (wrong); b: 1 (wrong); c: 2 (right), 3 (wrong); d: 4 (wrong).
    assert [m[f"acc-{c}"] for c in "abcd"] == pytest.approx([50.0, 0.0, 50.0, 0.0])
    assert all(m[f"acc-{c}"] != m[f"acc-{c}"] for c in "efg")  # NaN: no images
    assert m["mean_class_acc"] == pytest.approx(25.0)
    assert m["mean_gflops_executed"] == pytest.approx((1 + 2 + 0.5 + 0.5 + 3 + 1) / 6)
    assert m["num_images"] == 6 and m["images_per_s"] > 0
    print_csv_format(results)  # Detectron2's trainer prints it: every value must format


def test_images_per_s_skips_the_first_call(monkeypatch):
    evaluator = DynnetClassificationEvaluator("cls_eval_toy")
    clock = iter([10.0, 11.0, 11.5])  # reset, end of the first call, end of the second
    monkeypatch.setattr(classification_module.time, "perf_counter", lambda: next(clock))
    assert _evaluate(evaluator, _batches())["classification"]["images_per_s"] == \
        pytest.approx(3 / 0.5)
    clock = iter([10.0, 12.0])  # one call: its 3 images over the time since reset()
    assert _evaluate(evaluator, _batches()[:1])["classification"]["images_per_s"] == \
        pytest.approx(3 / 2.0)


def test_gflops_omitted_when_absent_and_bad_outputs_named():
    m = _evaluate(DynnetClassificationEvaluator("cls_eval_toy"), _batches(False))["classification"]
    assert "mean_gflops_executed" not in m and m["top1"] == pytest.approx(100 * 2 / 6)
    mixed = _batches()[:1] + _batches(False)[1:]
    with pytest.raises(ValueError, match="3 model outputs have 'gflops' and 3 do not"):
        _evaluate(DynnetClassificationEvaluator("cls_eval_toy"), mixed)
    evaluator = DynnetClassificationEvaluator("cls_eval_toy")
    with pytest.raises(ValueError, match=r"shape \(5,\); expected \(7,\).*'cls_eval_toy'"):
        evaluator.process([{"label": 0, "image_id": 9}], [{"scores": torch.ones(5)}])
    with pytest.raises(ValueError, match="'label' of image 9 is 7; expected 0..6"):
        evaluator.process([{"label": 7, "image_id": 9}], [{"scores": torch.ones(7)}])
    assert DynnetClassificationEvaluator("cls_eval_toy").evaluate() == {}


def test_generalized_zero_shot_metrics_by_hand():
    register("cls_eval_zsl_toy", lambda: [], thing_classes=list("abcde"),
             seen_classes=["a", "b", "c"], unseen_classes=["d", "e"],
             evaluator_type="classification")

    def scores(*values):
        return {"scores": torch.tensor(values)}

    # (label, scores over a..e)
    images = [(0, scores(.9, .1, 0, 0, 0)),     # a: right
              (1, scores(.1, .2, 0, .7, 0)),    # b: predicted d, wrong
              (3, scores(.6, 0, 0, .3, .1)),    # d: predicted a (wrong); among d, e: d (right)
              (3, scores(0, 0, 0, .8, .2)),     # d: right, and right among d, e
              (4, scores(0, .5, 0, .4, .1))]    # e: predicted b (wrong); among d, e: d (wrong)
    batch = ([{"label": y, "image_id": i} for i, (y, _) in enumerate(images)],
             [s for _, s in images])
    m = _evaluate(build_evaluator(get_dynnet_cfg(), "cls_eval_zsl_toy"), [batch])["classification"]
    # per class, predicting among all: a 100, b 0, c no images, d 50, e 0
    assert m["acc_seen"] == pytest.approx(50.0) and m["acc_unseen"] == pytest.approx(25.0)
    assert m["H"] == pytest.approx(2 * 50 * 25 / 75)
    assert m["zsl_top1"] == pytest.approx(50.0)  # among d, e: d 2/2, e 0/1
    assert m["zsl_top2"] == m["zsl_top3"] == pytest.approx(100.0)  # only two unseen classes
    # AP among the unseen images (scores over d, e): d's column .3, .8, .4 ranks its images
    # (the first two) 1st and 3rd -> precision 1 at recall 1/2, 2/3 at recall 1: AP 5/6; e's
    # column .1, .2, .1 ranks the second image first, then its image tied with the first
    # (scikit-learn: one threshold, 1 positive among 3 images) -> AP 1/3
    assert m["zsl_mAP"] == pytest.approx(100 * (5 / 6 + 1 / 3) / 2)
