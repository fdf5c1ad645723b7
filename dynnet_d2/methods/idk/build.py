"""An IDK cascade from the ``CASCADE`` config node: stages, checks, fitting on the calibration
split, serving the test split (``tools/run_cascade.py``).

Every check (stage list, weights, label spaces, calibration split, epsilon) runs before any
stage is evaluated; the stages' order (cheapest first, most accurate last) is checked on the
calibration split before fitting: an error unless ``CASCADE.ALLOW_UNORDERED``, then a warning.
Images are mapped once, by the test-time ``ClassificationMapper`` of the first config stage
(every config stage must read images the same way).
"""
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from ...config import config_value, load_config
from ...data.classification import map_for_inference
from ...engine.results import results_file
from ...utils.io import atomic_write_json, ensure_writable_dir
from .cascade import (
    CascadeData,
    FitSpec,
    IDKCascade,
    accuracy_target,
    check_fit,
    check_target,
    fit_classifiers,
    reference_stage,
    stage_order_problems,
)
from .runner import serve
from .stages import (
    COST_UNITS,
    TORCHSCRIPT_SUFFIXES,
    CascadeConfigError,
    HumanExpertStage,
    ModelStage,
    ModuleStage,
    Stage,
    check_calibration_split,
    check_label_spaces,
    measure_latency,
)

logger = logging.getLogger(__name__)
# Inputs whose latency is measured per stage when CASCADE.COST is "latency".
LATENCY_SAMPLE = 1024
MAPPER_KEYS = ("INPUT.FORMAT", "INPUT.CLASSIFICATION.CROP_SIZE")


def _per_stage(values: Sequence, n: int, key: str) -> List:
    if values and len(values) != n:
        raise CascadeConfigError(f"{key} has {len(values)} entries for {n} CASCADE.STAGES; "
                                 f"expected one per stage (or none)")
    return list(values)


def check_cascade_config(cfg) -> None:
    """The CASCADE keys that can be checked without loading anything."""
    c = cfg.CASCADE
    stages = len(c.STAGES) + int(c.HUMAN.ENABLED)
    if stages < 2:
        raise CascadeConfigError(f"CASCADE.STAGES has {len(c.STAGES)} entries (human expert "
                                 f"{'on' if c.HUMAN.ENABLED else 'off'}): a cascade needs >= 2")
    if len(c.WEIGHTS) != len(c.STAGES):
        raise CascadeConfigError(f"CASCADE.WEIGHTS has {len(c.WEIGHTS)} entries for "
                                 f"{len(c.STAGES)} CASCADE.STAGES; expected one per stage")
    _per_stage(c.STAGE_COSTS, len(c.STAGES), "CASCADE.STAGE_COSTS")
    _per_stage(c.STAGE_TRAIN_DATASETS, len(c.STAGES), "CASCADE.STAGE_TRAIN_DATASETS")
    if c.COST not in COST_UNITS:
        raise CascadeConfigError(f"CASCADE.COST={c.COST!r}; expected one of {COST_UNITS}")
    check_target(c.EPSILON, c.TARGET_ACCURACY)
    check_fit(c.METHOD, fit_spec(cfg, target=0.0, reference=0))
    if c.BATCH_SIZE < 1:
        raise CascadeConfigError(f"CASCADE.BATCH_SIZE={c.BATCH_SIZE}: expected >= 1")
    if c.MAX_WAIT_MS < 0:
        raise CascadeConfigError(f"CASCADE.MAX_WAIT_MS={c.MAX_WAIT_MS}: expected >= 0 "
                                 f"(0 = no deadline)")
    for name in (c.CALIB_DATASET, c.TEST_DATASET):
        if name not in DatasetCatalog.list():
            raise CascadeConfigError(f"dataset {name!r} (CASCADE.CALIB_DATASET / TEST_DATASET) "
                                     f"is not registered")


def build_stages(cfg) -> List[Stage]:
    """The model stages of ``cfg.CASCADE`` (the human expert is added by :func:`add_human`)."""
    c = cfg.CASCADE
    check_cascade_config(cfg)
    costs = _per_stage(c.STAGE_COSTS, len(c.STAGES), "CASCADE.STAGE_COSTS")
    trains = _per_stage(c.STAGE_TRAIN_DATASETS, len(c.STAGES), "CASCADE.STAGE_TRAIN_DATASETS")
    classes = MetadataCatalog.get(c.CALIB_DATASET).get("thing_classes")
    stages: List[Stage] = []
    for j, (path, weights) in enumerate(zip(c.STAGES, c.WEIGHTS)):
        cost = costs[j] if costs and costs[j] >= 0 else None
        name = Path(path).stem
        if path.endswith(TORCHSCRIPT_SUFFIXES):
            try:
                module = torch.jit.load(path, map_location=cfg.MODEL.DEVICE)
            except (RuntimeError, ValueError, OSError) as e:
                raise CascadeConfigError(f"cascade stage {j} ({path!r}, CASCADE.STAGES): not a "
                                         f"loadable TorchScript file: {e}") from e
            if cost is None and c.COST == "flops":
                raise CascadeConfigError(f"cascade stage {j} ({path!r}) is a TorchScript "
                                         f"file: give its FLOPs per input in "
                                         f"CASCADE.STAGE_COSTS")
            train = [t for t in (trains[j] if trains else "").split(",") if t]
            stages.append(ModuleStage(module, name=name, class_names=classes, cost=cost,
                                      train_datasets=train))
        else:
            stage_cfg = load_config(path, ["MODEL.DEVICE", cfg.MODEL.DEVICE])
            stages.append(ModelStage(stage_cfg, weights, name=name, cost=cost))
    configs = [s.cfg for s in stages if isinstance(s, ModelStage)]
    for key in MAPPER_KEYS:
        values = {str(config_value(sc, key)) for sc in configs}
        if len(values) > 1:
            raise CascadeConfigError(f"the config stages read images differently ({key} is "
                                     f"{sorted(values)}); the cascade maps every image once")
    return stages


def map_inputs(cfg, stages: Sequence[Stage], dataset: str) -> List[Dict]:
    """``dataset`` mapped for inference by the first config stage's mapper (else ``cfg``'s)."""
    return map_for_inference(next((s.cfg for s in stages if isinstance(s, ModelStage)), cfg),
                             dataset)


def collect(stages: Sequence[Stage], inputs: List[Dict], batch_size: int) -> CascadeData:
    """Every stage's probabilities and costs on every input."""
    probs, costs = [], []
    for stage in stages:
        outs = [stage.predict(inputs[i:i + batch_size]) for i in range(0, len(inputs),
                                                                     batch_size)]
        probs.append(torch.cat([o[0] for o in outs]))
        costs.append(torch.cat([o[1] for o in outs]))
    labels = torch.tensor([int(d["label"]) for d in inputs])
    return CascadeData(labels, probs, costs)


def add_human(cfg, stages: List[Stage], data: CascadeData, inputs: List[Dict]) -> CascadeData:
    """Append the simulated human expert (CASCADE.HUMAN) to ``stages`` and to ``data``."""
    h = cfg.CASCADE.HUMAN
    cost = h.COST_FACTOR * max(float(c.mean()) for c in data.costs)
    human = HumanExpertStage(class_names=stages[0].class_names, cost=cost,
                             accuracy=h.ACCURACY, seed=h.SEED)
    stages.append(human)
    extra = collect([human], inputs, len(inputs))
    return CascadeData(data.labels, data.probs + extra.probs, data.costs + extra.costs)


def fit_spec(cfg, *, target: float, reference: int) -> FitSpec:
    """The CASCADE.* hyper-parameters of fitting, for an accuracy ``target`` and the
    ``reference`` stage."""
    c, learned = cfg.CASCADE, cfg.CASCADE.LEARNED
    return FitSpec(target=target, reference=reference, grid_size=c.GRID_SIZE, lam=learned.LAMBDA,
                   fit=learned.FIT, meet_target=learned.MEET_TARGET, iters=learned.ITERS,
                   lr=learned.LR, mlp_hidden=tuple(learned.MLP_HIDDEN), seed=learned.SEED)


def prepare(cfg) -> tuple:
    """Stages (human expert included) with their costs set, and the calibration inputs and
    outputs, after every check."""
    c = cfg.CASCADE
    stages = build_stages(cfg)
    check_label_spaces(stages, MetadataCatalog.get(c.CALIB_DATASET).thing_classes,
                       c.CALIB_DATASET)
    check_calibration_split(c.CALIB_DATASET, stages)
    calib_inputs = map_inputs(cfg, stages, c.CALIB_DATASET)
    if c.COST == "latency":
        for stage in stages:
            if stage.cost is None:
                stage.cost = measure_latency(stage, calib_inputs[:LATENCY_SAMPLE], c.BATCH_SIZE)
    calib = collect(stages, calib_inputs, c.BATCH_SIZE)
    if c.HUMAN.ENABLED:
        calib = add_human(cfg, stages, calib, calib_inputs)
    return stages, calib_inputs, calib


def check_stage_order(cfg, stages: Sequence[Stage], calib: CascadeData) -> List[str]:
    """The stages' order problems on the calibration split (:func:`stage_order_problems`):
    an error, or with ``CASCADE.ALLOW_UNORDERED`` a warning; returns them."""
    c = cfg.CASCADE
    problems = stage_order_problems(calib, [s.name for s in stages])
    if not problems:
        return problems
    message = (f"the cascade's stages are out of order on {c.CALIB_DATASET}: "
               f"{'; '.join(problems)}. A cascade asks the cheapest stage first and ends with "
               f"the most accurate one: reorder CASCADE.STAGES")
    if not c.ALLOW_UNORDERED:
        raise CascadeConfigError(f"{message}, or set CASCADE.ALLOW_UNORDERED True to fit and "
                                 f"serve it anyway")
    logger.warning(message)
    return problems


def run_cascade(cfg, cascade_file: Optional[str] = None) -> Dict:
    """Fit the cascade on CASCADE.CALIB_DATASET (or load ``cascade_file``), save it to
    ``OUTPUT_DIR/cascade.json``, serve CASCADE.TEST_DATASET with it and with the reference
    stage alone, and write ``OUTPUT_DIR/inference/results.json``; return the results."""
    c = cfg.CASCADE
    ensure_writable_dir(cfg.OUTPUT_DIR)
    stages, _, calib = prepare(cfg)
    order_problems = check_stage_order(cfg, stages, calib)
    spec = fit_spec(cfg, target=accuracy_target(calib, c.EPSILON, c.TARGET_ACCURACY),
                    reference=reference_stage(calib))
    if cascade_file:
        cascade = IDKCascade.load(cascade_file, stages)
    else:
        classifiers = fit_classifiers(c.METHOD, calib, spec)
        cascade = IDKCascade(stages, classifiers, method=c.METHOD, fit={
            "calib_dataset": c.CALIB_DATASET, "target_accuracy": spec.target,
            "reference_stage": stages[spec.reference].name,
            "calib_accuracies": calib.accuracies()})
    cascade.save(os.path.join(cfg.OUTPUT_DIR, "cascade.json"))
    test_inputs = map_inputs(cfg, stages, c.TEST_DATASET)
    labels = torch.tensor([int(d["label"]) for d in test_inputs])
    result = serve(stages, cascade.classifiers, test_inputs, c.BATCH_SIZE,
                   max_wait_ms=c.MAX_WAIT_MS).summary(labels, len(stages))
    reference = stages[spec.reference]
    alone = serve([reference], [], test_inputs, c.BATCH_SIZE).summary(labels, 1)
    result.update({
        "method": cascade.method, "stages": [s.name for s in stages],
        "reference_stage": reference.name, "reference_accuracy": alone["accuracy"],
        "reference_inputs_per_s": alone["inputs_per_s"],
        "relative_cost": result["mean_cost"] / alone["mean_cost"],
        "speedup": result["inputs_per_s"] / alone["inputs_per_s"],
        "cost_unit": c.COST, "batch_size": c.BATCH_SIZE, "max_wait_ms": c.MAX_WAIT_MS,
        "order_problems": order_problems})
    path = results_file(cfg.OUTPUT_DIR)
    atomic_write_json(path, {"cascade": result}, indent=2)
    logger.info(f"IDK cascade on {c.TEST_DATASET}: {result}")
    return result
