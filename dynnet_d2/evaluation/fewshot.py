"""Class subsets of generalized few-shot evaluation (TFA, thesis ch. 7.3).

A dataset is few-shot when its metadata has ``base_classes`` and ``novel_classes`` (class
names). Its evaluators report, besides the usual metrics over all its ``thing_classes``,
``bAP``, ``bAP50``, ``bAP75`` over the base classes and ``nAP``, ``nAP50``, ``nAP75`` over the
novel classes among ``thing_classes``, from the same per-image matching as ``AP`` (one
evaluation pass; fsdet instead runs COCOeval once per subset). A subset with no class in
``thing_classes`` (the novel classes of a ``*_base`` dataset) is not reported.

An evaluation whose every metric is undefined (NaN: not a single detection above the score
threshold, e.g. a model whose weights did not load) is an error, never a row of a table
(:func:`check_results_defined`).
"""
import math
from typing import Dict, List, Mapping, Optional

from tabulate import tabulate

# (metadata key, metric prefix) of each subset.
SUBSETS = (("base_classes", "b"), ("novel_classes", "n"))
# The metrics reported per subset, each as prefix + metric.
SUBSET_METRICS = ("AP", "AP50", "AP75")


def class_subsets(metadata) -> Dict[str, List[str]]:
    """``{prefix: class names}`` of the subsets to report, each in ``thing_classes`` order:
    ``{"b": base, "n": novel}`` for a few-shot dataset, ``{}`` for any other."""
    if metadata.get("base_classes") is None or metadata.get("novel_classes") is None:
        return {}
    thing_classes = list(metadata.get("thing_classes", ()))
    subsets = {}
    for key, prefix in SUBSETS:
        wanted = set(metadata.get(key))
        names = [name for name in thing_classes if name in wanted]
        if names:
            subsets[prefix] = names
    return subsets


def prefixed(prefix: str, metrics: Mapping[str, float]) -> Dict[str, float]:
    """``{prefix + metric: value}`` for the :data:`SUBSET_METRICS` of ``metrics``."""
    return {prefix + name: metrics[name] for name in SUBSET_METRICS}


# Columns of the generalized table: all classes, base classes, novel classes.
TABLE_METRICS = ("AP", "AP50", "AP75", "bAP", "bAP50", "bAP75", "nAP", "nAP50", "nAP75")


def generalized_table(results: Mapping[str, Mapping[str, Mapping[str, float]]],
                      task: str = "bbox") -> str:
    """A table of :data:`TABLE_METRICS` (rows: the runs of ``{run: {task: {metric: value}}}``)."""
    rows = [[run] + [_format(metrics.get(task, {}).get(m)) for m in TABLE_METRICS]
            for run, metrics in results.items()]
    return tabulate(rows, headers=["run", *TABLE_METRICS], tablefmt="pipe")


def _format(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def check_results_defined(results: Mapping[str, Mapping[str, float]], what: str) -> None:
    """``ValueError`` naming ``what`` (the run or test set) when ``results`` (``{task: {metric:
    value}}``) hold metrics but not one of them is a number (all NaN or null): the model
    detected nothing above ``MODEL.ROI_HEADS.SCORE_THRESH_TEST`` on the whole test set."""
    values = [v for metrics in results.values() if isinstance(metrics, Mapping)
              for v in metrics.values()]
    if values and not any(isinstance(v, (int, float)) and not math.isnan(v) for v in values):
        raise ValueError(
            f"{what}: every metric is undefined (NaN), i.e. the model detected nothing above "
            f"MODEL.ROI_HEADS.SCORE_THRESH_TEST on the whole test set. Did its weights load "
            f"(the log lists the parameters that did not)? Not reported as a result.")
