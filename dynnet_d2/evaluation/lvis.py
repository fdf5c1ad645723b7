"""Detectron2's ``LVISEvaluator`` plus generalized few-shot metrics (:mod:`.fewshot`).

For a few-shot LVIS dataset each task (bbox, segm) also reports ``bAP``, ``bAP50``, ``bAP75``
and ``nAP``, ``nAP50``, ``nAP75``, next to Detectron2's AP, AP50, AP75, APs, APm, APl, APr,
APc, APf, all from ONE ``LVISEval`` run (one per-image matching).

lvis-api's ``LVISEval.accumulate()`` takes no parameters: it accumulates every category of
``params.cat_ids``, each on its own (``precision`` is (T, R, K, A)). Its frequency groups are
category subsets already: APr/APc/APf are ``_summarize("ap", freq_group_idx=g)``, the mean of the
precision of the categories ``freq_groups[g]`` (positions along K). A base or novel subset is one
more such group, so its metrics come from lvis-api's own code and equal those of an ``LVISEval``
whose ``params.cat_ids`` is the subset (with the results as loaded: the ``max_dets`` detections
kept per image are chosen among all categories, as the model outputs them). Values are in
percent as Detectron2 reports LVIS metrics: -100 where lvis-api gives -1 (no category of the
subset has ground truth in the evaluated images).

Detectron2 (main of 2024, the ``sal-detectron2`` 0.7.2 wheel) builds that ``LVISEval`` inside its
module function ``_evaluate_predictions_on_lvis`` (``from lvis import LVISEval`` at call time)
and returns only its metric table. So, for the duration of ``LVISEvaluator._eval_predictions``,
``lvis.LVISEval`` is a function that builds the same ``LVISEval`` and keeps it; a run that
evaluated detections without handing its ``LVISEval`` over is an error (an upstream change),
never a silent omission (``tests/evaluation/test_generalized_voc_lvis.py`` also checks that the
metrics of Detectron2 stay those of its own ``LVISEvaluator``).
"""
import itertools
from typing import Dict, Sequence

import lvis
import numpy as np
from detectron2.evaluation import LVISEvaluator
from lvis.eval import LVISEval

from ..compat import fix_lvis_numpy2
from .coco import subset_indices, swapped_attribute
from .fewshot import class_subsets, prefixed

# (metric, IoU threshold or None for the mean over 0.50:0.95) computed per class subset.
_SUBSET_SUMMARIES = (("AP", None), ("AP50", 0.5), ("AP75", 0.75))


def lvis_subset_results(lvis_eval: LVISEval, category_indices: Sequence[int]) -> Dict[str, float]:
    """``AP``, ``AP50``, ``AP75`` (lvis-api's fractions; -1 without ground truth) over the
    categories at ``category_indices`` of ``lvis_eval.params.cat_ids``, from its accumulated
    results, as one more frequency group; ``lvis_eval`` is left as it was."""
    saved = lvis_eval.freq_groups
    lvis_eval.freq_groups = [np.asarray(category_indices, dtype=np.int64)]
    try:
        return {metric: float(lvis_eval._summarize("ap", iou_thr=iou_thr, freq_group_idx=0))
                for metric, iou_thr in _SUBSET_SUMMARIES}
    finally:
        lvis_eval.freq_groups = saved


class DynnetLVISEvaluator(LVISEvaluator):
    """``LVISEvaluator`` adding ``bAP*`` / ``nAP*`` for few-shot datasets (module docstring)."""

    def __init__(self, dataset_name: str, *args, **kwargs):
        fix_lvis_numpy2()  # lvis 0.5.3 calls np.float
        super().__init__(dataset_name, *args, **kwargs)
        self._class_subsets = class_subsets(self._metadata)
        # LVIS category id -> class index, as Detectron2 maps predictions back.
        self._id_map = self._metadata.get("thing_dataset_id_to_contiguous_id") or {
            i + 1: i for i in range(len(self._metadata.get("thing_classes", ())))}

    def _eval_predictions(self, predictions):
        if not self._class_subsets:
            super()._eval_predictions(predictions)
            return
        evaluated = {}

        def lvis_eval_kept(*args, **kwargs):
            lvis_eval = LVISEval(*args, **kwargs)
            evaluated[lvis_eval.params.iou_type] = lvis_eval
            return lvis_eval

        with swapped_attribute(lvis, "LVISEval", lvis_eval_kept):
            super()._eval_predictions(predictions)
        has_detections = any(itertools.chain.from_iterable(
            p.get("instances", ()) for p in predictions))
        for task, results in self._results.items():
            if task not in ("bbox", "segm"):
                continue
            lvis_eval = evaluated.get(task)
            if lvis_eval is None and has_detections:
                raise RuntimeError(
                    f"Detectron2's LVISEvaluator evaluated {task} without building lvis.LVISEval "
                    f"at call time; update {type(self).__name__} to the installed Detectron2")
            for prefix, names in self._class_subsets.items():
                if lvis_eval is None:  # no detections: Detectron2 reports NaN
                    subset = {metric: float("nan") for metric, _ in _SUBSET_SUMMARIES}
                else:
                    indices = subset_indices(lvis_eval.params.cat_ids, self._id_map,
                                             self._metadata.thing_classes, names)
                    subset = {metric: value * 100 for metric, value
                              in lvis_subset_results(lvis_eval, indices).items()}
                results.update(prefixed(prefix, subset))
