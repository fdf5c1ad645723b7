"""Pascal VOC detection AP, with ground truth from the registered dataset dicts.

Detectron2's ``PascalVOCDetectionEvaluator`` re-reads ``Annotations/*.xml`` with ``int(...)``
and needs ``ImageSets/Main/<split>.txt``; this evaluator scores any dataset whose dicts carry
boxes, ``category_id`` and optionally ``difficult`` (e.g. :func:`dynnet_d2.data.pascal_voc.
load_voc_folder`), so it works on every folder that loader reads.

Matching follows the VOC devkit, per class and image, for each IoU threshold
0.50, 0.55, ..., 0.95: predictions in descending score order each take the ground-truth box
(GT) of highest IoU, matched or not; with that IoU strictly above the threshold (as in
Detectron2; the Matlab devkit uses >=), a GT marked ``difficult`` makes the prediction neither
true nor false positive, an unmatched GT makes it a true positive (and matched), an already
matched GT makes it a false positive (a duplicate, even if another unmatched GT overlaps it
above the threshold); otherwise it is a false positive. Difficult GTs are not counted as
positives. The AP is VOC2007's 11-point interpolation when the metadata ``year`` is 2007 (the
default), else (VOC2010+) the area under the monotone precision envelope.

Boxes are Detectron2's XYXY_ABS and the IoU is the plain continuous one. Detectron2 writes a
prediction ``(x0, y0, x1, y1)`` as ``(x0 + 1, y0 + 1, x1, y1)`` and compares it with the XML's
``(g0 + 1, g1 + 1, g2, g3)`` (``g`` the loaded GT, whose xmin/ymin the loader lowered by 1) using
``+ 1`` widths: width ``x1 - (x0 + 1) + 1 = x1 - x0`` and intersection
``min(x1, g2) - max(x0 + 1, g0 + 1) + 1 = min(x1, g2) - max(x0, g0)``, so its IoU is exactly
this one. Detectron2 also rounds scores to 3 decimals and coordinates to 0.1 in its text files,
which this evaluator does not. Two deliberate differences from Detectron2's evaluator:

* A class without (non-difficult) GT has AP NaN and is left out of the class means; Detectron2
  counts it as 0.
* The 11 recall points are exactly k/10; Detectron2 compares with ``np.arange(0, 1.1, 0.1)``,
  whose 0.3, 0.6 and 0.7 lie slightly above those values, so its AP differs when some recall
  equals one of them exactly (possible only when a class has a multiple of 5 positives).

APs are in percent in the returned metrics, fractions in :func:`voc_per_class_ap`. For a
few-shot dataset (metadata ``base_classes`` and ``novel_classes``, :mod:`.fewshot`) the metrics
also have ``bAP``, ``bAP50``, ``bAP75`` and ``nAP``, ``nAP50``, ``nAP75``: the same class means
over the base / novel classes, from the per-class APs of the one evaluation.
"""
import logging
from collections import OrderedDict
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import BoxMode
from detectron2.utils import comm

from .fewshot import class_subsets, prefixed

IOU_THRESHOLD_PERCENTS = tuple(range(50, 100, 5))
IOU_THRESHOLDS = np.array(IOU_THRESHOLD_PERCENTS) / 100.0
# VOC2007's recall points k/10 (division keeps them exact; 0.1 * k would not be).
RECALL_POINTS_11 = np.arange(11) / 10.0

# One image's ground truth: boxes (G, 4) XYXY_ABS, category ids (G,), difficult flags (G,).
GroundTruth = Tuple[np.ndarray, np.ndarray, np.ndarray]


def pairwise_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) of XYXY boxes (N, 4) and (M, 4); 0 where the union is empty."""
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=2)
    area1 = np.prod(boxes1[:, 2:] - boxes1[:, :2], axis=1)
    area2 = np.prod(boxes2[:, 2:] - boxes2[:, :2], axis=1)
    union = area1[:, None] + area2[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def match_predictions(pred_boxes: np.ndarray, gt_boxes: np.ndarray, gt_difficult: np.ndarray,
                      iou_thresholds: np.ndarray = IOU_THRESHOLDS) -> Tuple[np.ndarray, np.ndarray]:
    """VOC matching of one image's predictions of one class, given in descending score order.

    Args:
        pred_boxes: (P, 4) XYXY; gt_boxes: (G, 4) XYXY; gt_difficult: (G,) bool.
        iou_thresholds: (T,); a prediction needs IoU strictly above the threshold.
    Returns:
        ``(true_positive, false_positive)``, each (T, P) bool; both False for a prediction whose
        best GT is difficult.
    """
    num_thresholds, num_predictions = len(iou_thresholds), len(pred_boxes)
    if len(gt_boxes) == 0:
        return (np.zeros((num_thresholds, num_predictions), bool),
                np.ones((num_thresholds, num_predictions), bool))
    ious = pairwise_iou(pred_boxes, gt_boxes)
    best_gt = ious.argmax(axis=1)
    best_iou = ious[np.arange(num_predictions), best_gt]
    above = best_iou[None, :] > iou_thresholds[:, None]
    candidate = above & ~gt_difficult[best_gt][None, :]
    # (T, P, G): candidate p takes GT g; only the first candidate (in score order) of each GT
    # is a true positive, later ones are duplicates.
    takes = candidate[:, :, None] & (best_gt[:, None] == np.arange(len(gt_boxes)))[None]
    first_taker = takes & (np.cumsum(takes, axis=1) == 1)
    true_positive = first_taker.any(axis=2)
    return true_positive, ~above | (candidate & ~true_positive)


def average_precision(true_positive: np.ndarray, false_positive: np.ndarray, num_positives: int,
                      use_07_metric: bool) -> np.ndarray:
    """AP (T,) from (T, P) flags of predictions sorted by descending score over all images.

    ``use_07_metric``: mean over recall points k/10 of the best precision at recall >= k/10;
    else the sum of recall steps times the precision envelope (best precision at any higher
    recall). NaN when ``num_positives`` is 0.
    """
    num_thresholds = true_positive.shape[0]
    if num_positives == 0:
        return np.full(num_thresholds, np.nan)
    tp = np.cumsum(true_positive, axis=1, dtype=np.float64)
    fp = np.cumsum(false_positive, axis=1, dtype=np.float64)
    recall = tp / num_positives
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    if use_07_metric:
        # Recall is non-decreasing: the best precision at recall >= r is the envelope at the
        # first prediction reaching r; 0 when no prediction reaches r.
        first_reaching = (recall[:, :, None] < RECALL_POINTS_11).sum(axis=1)
        padded = np.concatenate([envelope, np.zeros((num_thresholds, 1))], axis=1)
        return np.take_along_axis(padded, first_reaching, axis=1).mean(axis=1)
    recall_steps = np.diff(recall, axis=1, prepend=0.0)
    return (recall_steps * envelope).sum(axis=1)


def _ground_truth_by_image(dataset_dicts: Sequence[dict]) -> Dict[str, GroundTruth]:
    ground_truth = {}
    for record in dataset_dicts:
        annotations = record.get("annotations", [])
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations]
        ground_truth[record["image_id"]] = (
            np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            np.asarray([a["category_id"] for a in annotations], dtype=np.int64),
            np.asarray([bool(a.get("difficult", 0)) for a in annotations], dtype=bool),
        )
    return ground_truth


def _predictions_by_image(predictions: Sequence[Mapping]) -> Dict[str, Tuple[np.ndarray, ...]]:
    """Concatenate the records of each image_id: ``{image_id: (boxes, scores, classes)}``."""
    parts: Dict[str, List[Mapping]] = {}
    for record in predictions:
        parts.setdefault(record["image_id"], []).append(record)
    return {
        image_id: (
            np.concatenate([np.asarray(r["boxes"], np.float64).reshape(-1, 4) for r in records]),
            np.concatenate([np.asarray(r["scores"], np.float64).reshape(-1) for r in records]),
            np.concatenate([np.asarray(r["classes"], np.int64).reshape(-1) for r in records]),
        )
        for image_id, records in parts.items()
    }


def voc_per_class_ap(dataset_dicts: Sequence[dict], predictions: Sequence[Mapping],
                     class_names: Sequence[str],
                     use_07_metric: bool = True) -> Dict[str, np.ndarray]:
    """``{class name: AP (T,) as fractions, one per IoU threshold of IOU_THRESHOLDS}``; NaN for
    a class without (non-difficult) GT.

    Args:
        dataset_dicts: Detectron2 dataset dicts; ``category_id`` indexes ``class_names`` and
            annotations with a true ``difficult`` are ignored.
        predictions: records ``{"image_id", "boxes" (N, 4) XYXY_ABS, "scores" (N,),
            "classes" (N,)}``; several records of one image are merged.
    """
    num_classes = len(class_names)
    ground_truth = _ground_truth_by_image(dataset_dicts)
    num_positives = np.zeros(num_classes, dtype=np.int64)
    for image_id, (_, gt_classes, gt_difficult) in ground_truth.items():
        if np.any((gt_classes < 0) | (gt_classes >= num_classes)):
            raise ValueError(
                f"ground truth of image_id {image_id!r} has category_id(s) "
                f"{sorted(set(gt_classes.tolist()))}; expected indices into {len(class_names)} "
                f"classes {list(class_names)}"
            )
        num_positives += np.bincount(gt_classes[~gt_difficult], minlength=num_classes)
    # Per class: (scores (P,), true_positive (T, P), false_positive (T, P)) of each image.
    matched: List[List[Tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in class_names]
    for image_id, (boxes, scores, classes) in _predictions_by_image(predictions).items():
        if image_id not in ground_truth:
            raise ValueError(f"prediction for image_id {image_id!r}, which is not in the dataset")
        gt_boxes, gt_classes, gt_difficult = ground_truth[image_id]
        for category_id in np.unique(classes):
            if not 0 <= category_id < num_classes:
                raise ValueError(
                    f"prediction of class {category_id} for image_id {image_id!r}; expected a "
                    f"class index in [0, {num_classes})"
                )
            selected = np.flatnonzero(classes == category_id)
            selected = selected[np.argsort(-scores[selected], kind="stable")]
            is_class = gt_classes == category_id
            true_positive, false_positive = match_predictions(
                boxes[selected], gt_boxes[is_class], gt_difficult[is_class])
            matched[category_id].append((scores[selected], true_positive, false_positive))
    per_class_ap = {}
    no_predictions = (np.zeros(0), np.zeros((len(IOU_THRESHOLDS), 0), bool),
                      np.zeros((len(IOU_THRESHOLDS), 0), bool))
    for category_id, name in enumerate(class_names):
        parts = matched[category_id] or [no_predictions]
        scores = np.concatenate([p[0] for p in parts])
        true_positive = np.concatenate([p[1] for p in parts], axis=1)
        false_positive = np.concatenate([p[2] for p in parts], axis=1)
        order = np.argsort(-scores, kind="stable")
        per_class_ap[name] = average_precision(
            true_positive[:, order], false_positive[:, order], int(num_positives[category_id]),
            use_07_metric,
        )
    return per_class_ap


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def voc_metrics(per_class_ap: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """``AP`` (mean over IoU thresholds of the class mean), ``AP50``, ``AP75`` and
    ``AP50-<class>``, in percent, from :func:`voc_per_class_ap` output (or a subset of its
    classes, e.g. the novel ones). Class means skip classes whose AP is NaN (no GT)."""
    table = np.array([per_class_ap[name] for name in per_class_ap], dtype=np.float64)
    table = table.reshape(len(per_class_ap), len(IOU_THRESHOLD_PERCENTS)) * 100.0
    class_mean = np.array([_nanmean(table[:, t]) for t in range(table.shape[1])])
    metrics = {
        "AP": _nanmean(class_mean),
        "AP50": float(class_mean[IOU_THRESHOLD_PERCENTS.index(50)]),
        "AP75": float(class_mean[IOU_THRESHOLD_PERCENTS.index(75)]),
    }
    for name, row in zip(per_class_ap, table):
        metrics[f"AP50-{name}"] = float(row[IOU_THRESHOLD_PERCENTS.index(50)])
    return metrics


class DynnetPascalVOCEvaluator(DatasetEvaluator):
    """Pascal VOC box AP of a registered dataset (see the module docstring).

    Call from all ranks: :meth:`evaluate` gathers the predictions on rank 0, which returns
    ``{"bbox": voc_metrics(...)}`` (plus ``bAP*`` / ``nAP*`` for a few-shot dataset) and keeps
    :attr:`per_class_ap`; other ranks return ``{}``.
    """

    def __init__(self, dataset_name: str):
        metadata = MetadataCatalog.get(dataset_name)
        self._dataset_name = dataset_name
        self._class_names = list(metadata.thing_classes)
        self._use_07_metric = metadata.get("year", 2007) == 2007
        self._class_subsets = class_subsets(metadata)
        self._logger = logging.getLogger(__name__)
        self._predictions: List[dict] = []
        # {class name: AP (T,) fractions per IoU threshold}, set by evaluate() on rank 0.
        self.per_class_ap: Dict[str, np.ndarray] = {}

    def reset(self):
        self._predictions = []
        self.per_class_ap = {}

    def process(self, inputs, outputs):
        for input_, output in zip(inputs, outputs):
            instances = output["instances"].to(torch.device("cpu"))
            self._predictions.append({
                "image_id": input_["image_id"],
                "boxes": instances.pred_boxes.tensor.numpy(),
                "scores": instances.scores.numpy(),
                "classes": instances.pred_classes.numpy(),
            })

    def evaluate(self):
        gathered = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return {}
        predictions = [record for rank_predictions in gathered for record in rank_predictions]
        self.per_class_ap = voc_per_class_ap(
            DatasetCatalog.get(self._dataset_name), predictions, self._class_names,
            self._use_07_metric,
        )
        without_gt = [name for name, ap in self.per_class_ap.items() if np.isnan(ap).all()]
        metric = "VOC2007 11-point" if self._use_07_metric else "VOC2010+ area"
        self._logger.info(
            f"Evaluated {self._dataset_name} with the {metric} AP on {len(predictions)} images"
            + (f"; classes without ground truth (AP NaN, not averaged): {without_gt}"
               if without_gt else "")
        )
        metrics = voc_metrics(self.per_class_ap)
        for prefix, names in self._class_subsets.items():
            metrics.update(prefixed(prefix, voc_metrics(
                {name: self.per_class_ap[name] for name in names})))
        return OrderedDict(bbox=metrics)
