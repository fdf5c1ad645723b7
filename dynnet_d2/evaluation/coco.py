"""Detectron2's ``COCOEvaluator`` with generalized few-shot metrics, a compiled COCOeval and
ground truth whose annotation ids pycocotools can score.

**Annotation ids.** pycocotools' matcher records "matched to ground truth id g" and treats
``g == 0`` as "not matched", so with a ground-truth annotation of id 0 every detection of that
object counts as a false positive (seen: AP50 94.9 instead of 100 for perfect predictions).
Duplicate ids break its index the same silently. Such files are common; here the evaluator's
in-memory copy of the ground truth is renumbered 1..N when needed (the user's file is never
touched) and the log says so.

**Engine.** With ``use_fast_impl`` (the default) COCOeval is Detectron2's compiled
``COCOeval_opt`` when Detectron2 was built with it, else faster-coco-eval's compiled
``COCOeval_faster`` (the numbers of pycocotools, about 10x faster); ``use_fast_impl=False`` is
pycocotools' own COCOeval. Detectron2 takes the class from its module global ``COCOeval_opt``
inside ``COCOEvaluator._eval_predictions``, so that global is our engine for the duration of
that call (Detectron2 main of 2024, the ``sal-detectron2`` 0.7.2 wheel; a renamed global is an
error, not a silent fallback, and ``tests/evaluation/test_generalized_coco.py`` checks which
class evaluated).

**Generalized few-shot metrics** (:mod:`.fewshot`): ``bAP``, ``bAP50``, ``bAP75``, ``nAP``,
``nAP50``, ``nAP75`` per task (bbox, segm), from the COCOeval that gave ``AP``. COCOeval's
accumulated ``precision`` (T, R, K, A, M) and ``recall`` (T, K, A, M) are computed for each
category k on its own, so those of a class subset are the subset's slices along K, and the
engine's own ``summarize()`` on the sliced arrays gives what a COCOeval run with
``params.catIds`` = the subset gives. The per-image matching (``evaluate()``) runs once per task.
Re-accumulating with a subset is not an option: pycocotools' ``accumulate(p)`` indexes its
per-image results by the position of a category in ``p.catIds`` instead of in the evaluated
categories (right only when the subset is a prefix of them), and the compiled engines'
``accumulate()`` takes no parameters.

**Task subsets** (partially supervised instance segmentation, thesis ch. 8): with
``task_subsets={"novel": [...], "base": [...]}`` the same subset arithmetic is reported as extra
tasks ``bbox_novel``, ``segm_novel``, ``bbox_base``, ``segm_base`` (``AP``, ``AP50``, ``AP75``),
the per-category protocol of the published partially supervised results (pycocotools with
``params.catIds`` restricted).

**Per-class AP of class orders other than the dataset's.** Detectron2 names ``AP-<class>``
assuming that the k-th category of COCOeval (sorted dataset ids) is ``thing_classes[k]``. For a
few-shot "all" dataset (base then novel) that is wrong: with ``shapes_test_all1`` it reported
the AP of ``triangle`` as ``AP-pentagon``. The class names are passed in COCOeval's category
order (via ``thing_dataset_id_to_contiguous_id``), so every ``AP-<class>`` is that class's.
"""
import contextlib
import io
import logging
from collections import Counter
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np
from detectron2.evaluation import COCOEvaluator, coco_evaluation
from faster_coco_eval import COCOeval_faster
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .fewshot import SUBSET_METRICS, class_subsets, prefixed

logger = logging.getLogger(__name__)


def renumber_annotation_ids(coco: COCO, source: str = "") -> bool:
    """Renumber ``coco``'s annotations 1..N in place if any id is 0 or repeated; return whether
    it did. ``source`` names the file in the log message."""
    annotations = coco.dataset.get("annotations", [])
    ids = Counter(a["id"] for a in annotations)
    if 0 not in ids and all(count == 1 for count in ids.values()):
        return False
    for new_id, annotation in enumerate(annotations, start=1):
        annotation["id"] = new_id
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    why = "include 0" if 0 in ids else "are not unique"
    logger.warning(
        f"Annotation ids of {source or 'the ground truth'} {why}, which pycocotools mis-scores; "
        f"evaluating on a copy renumbered 1..{len(annotations)} (the file is unchanged)."
    )
    return True


def cocoeval_class(use_fast_impl: bool = True) -> type:
    """The COCOeval class to evaluate with: with ``use_fast_impl``, Detectron2's compiled
    ``COCOeval_opt`` if it is built, else faster-coco-eval's ``COCOeval_faster``; without,
    pycocotools' ``COCOeval``."""
    if not use_fast_impl:
        return COCOeval
    if coco_evaluation.COCOeval_opt is not coco_evaluation.COCOeval:
        return coco_evaluation.COCOeval_opt
    return COCOeval_faster


@contextlib.contextmanager
def swapped_attribute(owner, name: str, value) -> Iterator[None]:
    """``owner.name = value`` inside the block, restored after; ``AttributeError`` if ``owner``
    has no ``name`` (an upstream rename must not pass unnoticed)."""
    if not hasattr(owner, name):
        raise AttributeError(f"{owner!r} has no attribute {name!r} to replace (changed upstream?)")
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def summarize_categories(coco_eval, category_indices: Sequence[int]) -> np.ndarray:
    """``coco_eval.stats`` as its ``summarize()`` computes them over only the categories at
    ``category_indices`` of ``params.catIds``, from its accumulated ``eval`` (no new
    ``evaluate()`` or ``accumulate()``). ``coco_eval`` is left as it was."""
    index = np.asarray(category_indices, dtype=np.int64)
    accumulated = coco_eval.eval
    sliced = dict(accumulated, precision=accumulated["precision"][:, :, index],
                  recall=accumulated["recall"][:, index])
    if "scores" in accumulated:
        sliced["scores"] = accumulated["scores"][:, :, index]
    saved = {name: getattr(coco_eval, name) for name in ("eval", "stats", "all_stats")
             if hasattr(coco_eval, name)}
    try:
        coco_eval.eval = sliced
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints the table
            coco_eval.summarize()
        return np.array(coco_eval.stats, dtype=np.float64)
    finally:
        for name, value in saved.items():
            setattr(coco_eval, name, value)


def subset_indices(category_ids: Sequence[int], id_map: Mapping[int, int],
                   class_names: Sequence[str], names: Sequence[str]) -> List[int]:
    """Positions in ``category_ids`` (an evaluator's category axis, dataset ids) of the classes
    ``names``; ``id_map`` maps dataset ids to indices into ``class_names``. A class absent from
    the axis has no ground truth, so it would not count in a class mean anyway."""
    wanted = {list(class_names).index(name) for name in names}
    return [k for k, c in enumerate(category_ids) if id_map.get(int(c)) in wanted]


class DynnetCOCOEvaluator(COCOEvaluator):
    """``COCOEvaluator`` with a compiled engine, ground truth with annotation ids pycocotools can
    score, per-class AP of the right class, and ``bAP*`` / ``nAP*`` for few-shot datasets (see
    the module docstring)."""

    def __init__(self, dataset_name: str, *args, use_fast_impl: bool = True,
                 task_subsets: Optional[Mapping[str, Sequence[str]]] = None, **kwargs):
        # Detectron2 only knows its own fast COCOeval and logs "not built" without it.
        super().__init__(dataset_name, *args, use_fast_impl=False, **kwargs)
        # name -> class names: reported as the extra tasks "<task>_<name>" (bbox and segm).
        classes = list(self._metadata.get("thing_classes", ()))
        self._task_subsets = {name: [c for c in classes if c in set(names)]
                              for name, names in (task_subsets or {}).items()}
        self._subset_tasks: Dict[str, Dict[str, float]] = {}
        self._cocoeval = cocoeval_class(use_fast_impl)
        self._use_fast_impl = self._cocoeval is not COCOeval
        self._class_subsets = class_subsets(self._metadata)
        # Dataset category id -> class index, as Detectron2 maps predictions back (identity
        # without thing_dataset_id_to_contiguous_id).
        self._id_map = self._metadata.get("thing_dataset_id_to_contiguous_id") or {
            i: i for i in range(len(self._metadata.get("thing_classes", ())))}
        self._logger.info(
            f"COCO evaluation of {dataset_name} with {self._cocoeval.__module__}."
            f"{self._cocoeval.__name__}" + (
                f"; generalized few-shot metrics over {sorted(self._class_subsets)} subsets"
                if self._class_subsets else ""))
        renumber_annotation_ids(self._coco_api, self._metadata.json_file)

    def _eval_predictions(self, predictions, img_ids=None):
        # Detectron2 evaluates with cocoeval_fn=COCOeval_opt (a global of its module) when
        # _use_fast_impl; make that our engine for this call.
        self._subset_tasks = {}
        if not any(p.get("instances") for p in predictions):
            self._logger.warning(
                f"No detection on any image of {self._metadata.name} (none scored above the "
                f"model's test score threshold, e.g. MODEL.ROI_HEADS.SCORE_THRESH_TEST): every "
                f"metric is undefined (null in results.json)")
        with swapped_attribute(coco_evaluation, "COCOeval_opt", self._cocoeval):
            super()._eval_predictions(predictions, img_ids=img_ids)
        self._results.update(self._subset_tasks)

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        if coco_eval is not None and class_names is not None:
            along_axis = [self._id_map.get(int(c)) for c in coco_eval.params.catIds]
            if (None not in along_axis
                    and sorted(along_axis) == list(range(len(class_names)))):
                class_names = [class_names[c] for c in along_axis]
        results = super()._derive_coco_results(coco_eval, iou_type, class_names=class_names)
        if iou_type in ("bbox", "segm"):
            for prefix, names in self._class_subsets.items():
                results.update(prefixed(prefix, self._subset_results(coco_eval, names)))
            for name, names in self._task_subsets.items():
                self._subset_tasks[f"{iou_type}_{name}"] = self._subset_results(coco_eval,
                                                                                names)
        return results

    def _subset_results(self, coco_eval, names: Sequence[str]) -> Dict[str, float]:
        """``AP``, ``AP50``, ``AP75`` (percent; NaN when none of ``names`` has ground truth or
        there are no predictions) over the classes ``names``."""
        if coco_eval is None:
            return {metric: float("nan") for metric in SUBSET_METRICS}
        stats = summarize_categories(coco_eval, subset_indices(
            coco_eval.params.catIds, self._id_map, self._metadata.thing_classes, names))
        # stats[:3] are AP, AP50, AP75 for every COCOeval implementation.
        return {metric: float(stats[i] * 100) if stats[i] >= 0 else float("nan")
                for i, metric in enumerate(SUBSET_METRICS)}
