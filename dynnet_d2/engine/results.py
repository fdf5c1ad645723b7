"""``OUTPUT_DIR/inference/results.json``: ``{task: {metric: value}}`` (brief §3)."""
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

from ..evaluation.classification import nest_per_class_accuracy
from ..utils.io import atomic_write_json


def results_file(output_dir: Union[str, os.PathLike]) -> Path:
    """The ``inference/results.json`` of the run in ``output_dir`` (its primary test set's
    evaluation, written when the run finishes)."""
    return Path(output_dir) / "inference" / "results.json"


def json_safe(value: Any) -> Any:
    """JSON-safe copy: NaN (e.g. AP of a class without ground truth) becomes null."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return json_safe(value.item())
    return value


def results_per_dataset(results: Mapping[str, Any],
                        dataset_names: Sequence[str]) -> "OrderedDict[str, Any]":
    """``{dataset: {task: {metric: value}}}`` from what ``DefaultTrainer.test`` returns: the
    metrics of the single dataset, or a mapping dataset name -> metrics for several."""
    if len(dataset_names) > 1:
        return OrderedDict((n, results[n]) for n in dataset_names)
    return OrderedDict([(dataset_names[0], results)])


def write_results(output_dir: str, results: Mapping[str, Any],
                  dataset_names: Sequence[str]) -> Dict[str, str]:
    """Write each test dataset's ``{task: {metric: value}}`` and return the written paths.

    ``results`` is what ``DefaultTrainer.test`` returns (:func:`results_per_dataset`).
    ``inference/results.json`` holds the first (primary) dataset;
    ``inference/<dataset>/results.json`` holds each one. A classifier's per-class accuracies
    are written as one ``per_class_acc`` mapping.
    """
    per_dataset = OrderedDict((name, nest_per_class_accuracy(metrics)) for name, metrics
                              in results_per_dataset(results, dataset_names).items())
    paths = {}
    for name, metrics in per_dataset.items():
        path = os.path.join(output_dir, "inference", name, "results.json")
        atomic_write_json(path, json_safe(metrics), indent=2)
        paths[name] = path
    primary = str(results_file(output_dir))
    atomic_write_json(primary, json_safe(per_dataset[dataset_names[0]]), indent=2)
    paths["primary"] = primary
    return paths
