"""FSRW's pipeline step outside training: the class vectors of a trained reweighting detector
recomputed from the support instances of any registered dataset (e.g. more shots at test time,
the references' "input sampling scheme"), written into a new checkpoint that ``--eval-only``
uses as it is."""
from pathlib import Path
from typing import Sequence

import torch
from detectron2.data import DatasetCatalog

from ...data import UnknownDatasetError
from ...data.build import unknown_dataset_message
from ...engine import DynnetTrainer
from ...engine.checkpoint import load_strictly
from ...utils.io import atomic_open
from .meta_arch import ReweightingRCNN, SupportSource
from .one_stage import ReweightingYOLO


def recompute_class_vectors(cfg, support_datasets: Sequence[str], output: str) -> torch.Tensor:
    """Load ``MODEL.WEIGHTS`` (strictly) into ``cfg``'s model, store the mean class vectors over
    the instances of ``support_datasets`` (``MODEL.FSRW.MEAN_SUPPORTS_PER_CLASS`` applies), and
    write the model to ``output`` (atomically); returns the vectors ``(N, r)``. Unknown datasets,
    another detector or datasets of another class count are errors before any work."""
    registered = DatasetCatalog.list()
    for name in support_datasets:
        if name not in DatasetCatalog:
            raise UnknownDatasetError(unknown_dataset_message(name, "--supports", registered))
    detectors = (ReweightingYOLO.__name__, ReweightingRCNN.__name__)
    if cfg.MODEL.META_ARCHITECTURE not in detectors:
        raise ValueError(f"MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r}: class vectors "
                         f"belong to the reweighting detectors {detectors}")
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("MODEL.WEIGHTS is empty: name the trained reweighting detector")
    model = DynnetTrainer.build_model(cfg)
    load_strictly(model, cfg, cfg.MODEL.WEIGHTS)
    model.eval()
    vectors = model.compute_class_vectors(SupportSource(support_datasets, cfg.INPUT.FORMAT))
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(output, "wb") as f:
        torch.save({"model": model.state_dict()}, f)
    return vectors
