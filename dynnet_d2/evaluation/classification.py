"""Image classification evaluator: accuracy, executed GFLOPs and throughput.

The metrics the thesis reports for dynamic classifiers (SkipNet ch. 2, IDK cascades, DeepMoE,
TAFE-Net): top-1 / top-5 accuracy next to the computation actually executed per image.
A model returns per image ``{"scores": Tensor (C,) class probabilities, "gflops": float}``
(``gflops`` optional); its input carries ``"label"``.
"""
import itertools
import logging
import math
import time
from collections import OrderedDict
from typing import Dict, Iterable, List

import torch
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

logger = logging.getLogger(__name__)
# k of the closed-world zero-shot top-k accuracies.
ZSL_TOPK = (1, 2, 3)
# Prefix of the per-class accuracies in evaluate()'s output (Detectron2's "AP-<class>" style).
PER_CLASS_PREFIX = "acc-"


def per_class_accuracy(labels: List[int], predicted: List[int], num_classes: int) -> List[float]:
    """Top-1 accuracy in percent of each class's images (NaN for a class without images)."""
    hits, counts = [0] * num_classes, [0] * num_classes
    for y, p in zip(labels, predicted):
        counts[y] += 1
        hits[y] += p == y
    return [100.0 * h / c if c else math.nan for h, c in zip(hits, counts)]


def mean_over(classes: Iterable[int], accuracy: List[float]) -> float:
    """The mean of ``accuracy`` over ``classes``, skipping NaN (classes without images)."""
    values = [accuracy[c] for c in classes if not math.isnan(accuracy[c])]
    return sum(values) / len(values) if values else math.nan


def mean_average_precision(truth: List[int], scores: torch.Tensor) -> float:
    """In percent: the mean over the classes present in ``truth`` (indices into the columns of
    ``scores`` ``(N, K)``) of the average precision of their column ranking their images."""
    from sklearn.metrics import average_precision_score

    truth = torch.as_tensor(truth)
    present = sorted(set(truth.tolist()))
    return 100.0 * sum(average_precision_score((truth == c).numpy(), scores[:, c].numpy())
                       for c in present) / len(present)


class DynnetClassificationEvaluator(DatasetEvaluator):
    """Accuracy of the scores against the labels of ``dataset_name``.

    ``evaluate()`` returns ``{"classification": {...}}`` with, in percent, ``top1``, ``top5``
    (top-min(5, C)), ``acc-<class name>`` for each class (NaN for a class without images; the
    ``acc-`` prefix follows Detectron2's ``AP-<class>`` so ``print_csv_format`` skips them) and
    ``mean_class_acc`` (over the classes with images); ``mean_gflops_executed`` (only when every
    output has ``gflops``); ``num_images``; and ``images_per_s``: the images of every
    ``process()`` call after the first, divided by the wall-clock time from the end of the
    first call to the end of the last (the first batch is warm-up); with a single call, its
    images divided by the time since ``reset()``. With several processes the images are gathered
    to the main process (the others return ``{}``) and ``images_per_s`` is the sum of the
    processes' rates.

    A zero-shot dataset (metadata ``seen_classes`` and ``unseen_classes``) adds the generalized
    zero-shot metrics of Xian et al. (the thesis' Table 5.2): ``acc_seen`` and ``acc_unseen``,
    the mean per-class top-1 over the seen / unseen classes present, predicting among all
    classes; ``H``, their harmonic mean (0 when both are 0); and the closed-world metrics of the
    unseen classes' images predicting among the unseen classes only (Tables 5.2 and 5.4):
    ``zsl_top1``, ``zsl_top2``, ``zsl_top3``, the mean per-class top-k accuracy, and
    ``zsl_mAP``, the mean over the unseen classes with images of the average precision of their
    scores (scikit-learn's ``average_precision_score``).
    """

    def __init__(self, dataset_name: str, distributed: bool = True):
        self._dataset_name = dataset_name
        metadata = MetadataCatalog.get(dataset_name)
        self._classes = list(metadata.thing_classes)
        unseen = metadata.get("unseen_classes", None)
        self._seen = ([self._classes.index(c) for c in metadata.seen_classes]
                      if unseen is not None else None)
        self._unseen = [self._classes.index(c) for c in unseen] if unseen is not None else None
        self._distributed = distributed
        self.reset()

    def reset(self):
        self._labels: List[int] = []
        self._topk: List[List[int]] = []  # the top-min(5, C) classes of each image, best first
        self._unseen_scores: List[torch.Tensor] = []  # zero-shot data: the unseen classes' scores
        self._gflops: List[float] = []
        self._missing_gflops = 0
        self._reset_time = time.perf_counter()
        self._first_end = None
        self._last_end = None
        self._first_images = 0
        self._images = 0

    def process(self, inputs, outputs):
        k = min(5, len(self._classes))
        for inp, out in zip(inputs, outputs):
            scores = out["scores"]
            if scores.shape != (len(self._classes),):
                raise ValueError(
                    f"model output 'scores' of image {inp.get('image_id')!r} has shape "
                    f"{tuple(scores.shape)}; expected ({len(self._classes)},), one score per "
                    f"class of dataset {self._dataset_name!r}")
            label = int(inp["label"])
            if not 0 <= label < len(self._classes):
                raise ValueError(
                    f"input 'label' of image {inp.get('image_id')!r} is {label}; expected "
                    f"0..{len(self._classes) - 1} (the classes of {self._dataset_name!r})")
            self._labels.append(label)
            scores = scores.detach().float().cpu()
            self._topk.append(torch.topk(scores, k).indices.tolist())
            if self._unseen is not None:
                self._unseen_scores.append(scores[self._unseen])
            if out.get("gflops") is None:
                self._missing_gflops += 1
            else:
                self._gflops.append(float(out["gflops"]))
        self._images += len(inputs)
        self._last_end = time.perf_counter()
        if self._first_end is None:
            self._first_end, self._first_images = self._last_end, len(inputs)

    def _images_per_s(self) -> float:
        if self._last_end is None:
            return 0.0
        if self._last_end == self._first_end:
            return self._images / (self._last_end - self._reset_time)
        return (self._images - self._first_images) / (self._last_end - self._first_end)

    def evaluate(self):
        state = (self._labels, self._topk, self._gflops, self._missing_gflops,
                 self._images_per_s(), self._unseen_scores)
        if self._distributed:
            comm.synchronize()
            states = comm.gather(state, dst=0)
            if not comm.is_main_process():
                return {}
        else:
            states = [state]
        labels = list(itertools.chain.from_iterable(s[0] for s in states))
        topk = list(itertools.chain.from_iterable(s[1] for s in states))
        gflops = list(itertools.chain.from_iterable(s[2] for s in states))
        missing_gflops = sum(s[3] for s in states)
        unseen_scores = list(itertools.chain.from_iterable(s[5] for s in states))
        if not labels:
            logger.warning(f"[DynnetClassificationEvaluator] {self._dataset_name}: no images were "
                           "processed; nothing to evaluate")
            return {}
        per_class = per_class_accuracy(labels, [t[0] for t in topk], len(self._classes))
        metrics = self._metrics(labels, topk, per_class, gflops, missing_gflops,
                                sum(s[4] for s in states))
        if self._unseen is not None:
            metrics.update(self._zero_shot_metrics(labels, per_class, unseen_scores))
        return {"classification": metrics}

    def _zero_shot_metrics(self, labels, per_class, unseen_scores) -> Dict[str, float]:
        seen, unseen = mean_over(self._seen, per_class), mean_over(self._unseen, per_class)
        harmonic = 2 * seen * unseen / (seen + unseen) if seen + unseen > 0 else 0.0
        metrics = {"acc_seen": seen, "acc_unseen": unseen, "H": harmonic}
        position = {c: i for i, c in enumerate(self._unseen)}
        rows = [i for i, y in enumerate(labels) if y in position]
        if not rows:
            return {**metrics, **{f"zsl_top{k}": math.nan for k in ZSL_TOPK}, "zsl_mAP": math.nan}
        truth = [position[labels[i]] for i in rows]
        scores = torch.stack([unseen_scores[i] for i in rows])
        ranking = scores.argsort(dim=1, descending=True).tolist()
        for k in ZSL_TOPK:
            predicted = [t if t in r[:k] else r[0] for t, r in zip(truth, ranking)]
            metrics[f"zsl_top{k}"] = mean_over(range(len(self._unseen)), per_class_accuracy(
                truth, predicted, len(self._unseen)))
        metrics["zsl_mAP"] = mean_average_precision(truth, scores)
        return metrics

    def _metrics(self, labels, topk, per_class, gflops, missing_gflops,
                 images_per_s) -> Dict[str, float]:
        metrics = OrderedDict(
            top1=100.0 * sum(t[0] == y for y, t in zip(labels, topk)) / len(labels),
            top5=100.0 * sum(y in t for y, t in zip(labels, topk)) / len(labels),
            mean_class_acc=mean_over(range(len(self._classes)), per_class),
        )
        if gflops and missing_gflops:
            raise ValueError(
                f"dataset {self._dataset_name!r}: {len(gflops)} model outputs have 'gflops' and "
                f"{missing_gflops} do not; expected all or none")
        if gflops:
            metrics["mean_gflops_executed"] = sum(gflops) / len(gflops)
        metrics["images_per_s"] = images_per_s
        metrics["num_images"] = len(labels)
        metrics.update((f"{PER_CLASS_PREFIX}{name}", acc)
                       for name, acc in zip(self._classes, per_class))
        logger.info(f"Classification on {self._dataset_name}: top1 {metrics['top1']:.2f}%, "
                    f"top5 {metrics['top5']:.2f}% over {len(labels)} images")
        return metrics


def nest_per_class_accuracy(metrics: Dict) -> Dict:
    """``{task: {metric: value}}`` with the classification task's ``acc-<class>`` entries
    gathered into one ``per_class_acc: {class: %}`` (the layout of ``results.json``)."""
    task = metrics.get("classification")
    if not isinstance(task, dict) or not any(k.startswith(PER_CLASS_PREFIX) for k in task):
        return dict(metrics)
    flat = {k: v for k, v in task.items() if not k.startswith(PER_CLASS_PREFIX)}
    flat["per_class_acc"] = {k[len(PER_CLASS_PREFIX):]: v for k, v in task.items()
                             if k.startswith(PER_CLASS_PREFIX)}
    return {**metrics, "classification": flat}
