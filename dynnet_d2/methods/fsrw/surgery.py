"""Phase 2 of a reweighting detector with a per-class predictor (``MODEL.FSRW.CLASS_SCORER
per_class``): its class-score rows (and the two-stage detector's box rows) are per class,

==========================================  =============  ==================================
``roi_heads.box_predictor.cls_score``       (N, D), (N,)   two-stage; row c: class c (no
                                                           background row: it has its scorer)
``roi_heads.box_predictor.bbox_pred``       (4N, D), (4N,) two-stage; rows 4c..4c+3: class c
``head.class_score``                        (NA, m), (NA,) one-stage; rows cA..cA+A-1: class c
==========================================  =============  ==================================

so phase 1's checkpoint (the base classes) is turned into one for every class of the split
before fine-tuning: a row of a class phase 1 knows is copied by class name, a novel class's
row is drawn from N(0, 0.01) (the predictor's own initialisation) with a zero bias, phase 1's
stored class vectors are dropped (phase 2 computes its own, for every class), every other tensor
is kept. A phase-1 checkpoint of the shared scorer needs nothing and is returned as it is.
"""
from pathlib import Path
from typing import Dict, Sequence

import torch
from detectron2.data import MetadataCatalog

from ...engine.checkpoint import read_checkpoint_file
from ...modeling.meta_arch import BOX_PREDICTOR_PREFIX
from ...utils.io import atomic_open

ONE_STAGE_SCORE = "head.class_score"  # (N A, m): rows of class i: i A .. (i + 1) A - 1
INIT_STD = 0.01
BOX_DIM = 4
#: What to do when a per-class predictor's rows do not fit: said by the checkpoint loaders.
PHASE_2_FIX = ("Phase 2 of MODEL.FSRW.CLASS_SCORER per_class starts from phase 1's model with "
               "rows for every class: dynnet_d2.methods.fsrw.surgery.phase_2_start(<phase-1 "
               "model_final.pth>, <base training set>, <all-class set>), which the FSRW sweep "
               "(tools/run_experiments.py) runs itself")


def per_class_predictor_must_fit(cfg) -> bool:
    """Both reweighting detectors' ``MetaArchitectureNeeds.predictor_must_fit``: the shared
    scorer has no class-count-shaped parameter (phase 2 starts from phase 1's checkpoint as it
    is); the per-class one (``CLASS_SCORER per_class``) has, and K-shot fine-tuning needs a
    checkpoint whose rows fit (:func:`phase_2_start`)."""
    return cfg.MODEL.FSRW.CLASS_SCORER == "per_class" and cfg.FEWSHOT.SHOT > 0


def per_class_layers(state: dict, num_base_classes: int) -> Dict[str, int]:
    """``{layer prefix: rows per class}`` of the per-class predictor in the model state dict
    ``state`` of a phase-1 model of ``num_base_classes`` classes; ``{}`` for the shared scorer
    (one row)."""
    two_stage = state.get(f"{BOX_PREDICTOR_PREFIX}cls_score.weight")
    if two_stage is not None:
        return {} if two_stage.shape[0] == 1 else {f"{BOX_PREDICTOR_PREFIX}cls_score": 1,
                                                   f"{BOX_PREDICTOR_PREFIX}bbox_pred": BOX_DIM}
    one_stage = state.get(f"{ONE_STAGE_SCORE}.weight")
    return {} if one_stage is None else {ONE_STAGE_SCORE: one_stage.shape[0] // num_base_classes}


def fit_per_class_predictor(state: dict, base_classes: Sequence[str],
                            classes: Sequence[str], *, seed: int = 0) -> dict:
    """A copy of the model state dict ``state`` whose per-class predictor rows for
    ``base_classes`` become rows for ``classes`` (module docstring); ``ValueError`` naming the
    layer when its rows are not a multiple of ``len(base_classes)``."""
    generator = torch.Generator().manual_seed(seed)
    out = {k: v for k, v in state.items() if ".class_vectors." not in f".{k}"}
    for layer, rows in per_class_layers(state, len(base_classes)).items():
        weight, bias = state[f"{layer}.weight"], state[f"{layer}.bias"]
        if weight.shape[0] != rows * len(base_classes):
            raise ValueError(f"{layer}.weight has {weight.shape[0]} rows, expected {rows} per "
                             f"class of the {len(base_classes)} base classes")
        new_weight = torch.empty((rows * len(classes), weight.shape[1]), dtype=weight.dtype)
        new_weight.normal_(0, INIT_STD, generator=generator)
        new_bias = torch.zeros(rows * len(classes), dtype=bias.dtype)
        for target, name in enumerate(classes):
            if name in base_classes:
                start = rows * list(base_classes).index(name)
                new_weight[rows * target:rows * (target + 1)] = weight[start:start + rows]
                new_bias[rows * target:rows * (target + 1)] = bias[start:start + rows]
        out[f"{layer}.weight"], out[f"{layer}.bias"] = new_weight, new_bias
    return out


def phase_2_start(checkpoint: str, base_set: str, all_set: str) -> str:
    """The checkpoint phase 2 starts from (the sweep's ``prepare`` hook): ``checkpoint`` itself
    for a shared scorer, else ``model_per_class_<all_set>.pth`` beside it (written once,
    atomically, without the training state) with :func:`fit_per_class_predictor`."""
    data = read_checkpoint_file(checkpoint, "phase-1 checkpoint")
    base_classes = MetadataCatalog.get(base_set).thing_classes
    if not per_class_layers(data["model"], len(base_classes)):  # the shared scorer
        return checkpoint
    path = Path(checkpoint).with_name(f"model_per_class_{all_set}.pth")
    if not path.is_file():
        model = fit_per_class_predictor(data["model"], base_classes,
                                        MetadataCatalog.get(all_set).thing_classes)
        with atomic_open(str(path), "wb") as f:
            torch.save({"model": model}, f)
    return str(path)
