"""``DynnetTrainer``: Detectron2's DefaultTrainer with what it lacks for us.

* datasets declared in the config (``DATASETS.COCO_JSON_DATASETS``, ``DATASETS.VOC_DATASETS``)
  registered by every entry point (training, ``--eval-only``, ``test``, tools/demo.py);
* every check before training or evaluation starts (:mod:`dynnet_d2.data.build`): unwritable
  ``OUTPUT_DIR``, ops missing from this Detectron2, unknown/empty datasets, class counts, boxes,
  masks, images, and an evaluator for every test dataset;
* DDP also on CPU (gloo), see :mod:`dynnet_d2.engine.ddp`;
* checkpoints written atomically, interrupted saves cleaned up, and ``--eval-only`` refusing
  weights that do not fit the model (:class:`DynnetCheckpointer`);
* ``OUTPUT_DIR/inference/results.json`` written after each evaluation;
* what depends on the kind of model (class-count key, loaders, evaluators, drawings, whether a
  checkpoint's predictor must fit) comes from the meta-architecture's declaration
  (:mod:`dynnet_d2.modeling.meta_arch`), and whether DDP must look for unused parameters from
  the dynamic-compute protocol (:mod:`dynnet_d2.modeling.dynamic`): the trainer knows no method;
* ``SOLVER.OPTIMIZER`` picks SGD (Detectron2's) or Adam, and a module may scale the learning
  rate of its parts (an ``lr_factors`` attribute, :func:`module_lr_factors`; TAFE-Net's task
  embedding network trains at a tenth);
* :func:`build_trainer` asks the trainer choosers methods register
  (:func:`register_trainer_chooser`; e.g. TFA's cached last-layer fine-tuning) and falls back to
  :class:`DynnetTrainer`.

``DynnetTrainer.__init__`` follows the body of Detectron2's ``DefaultTrainer.__init__``
(detectron2 main of 2024, the ``sal-detectron2`` 0.7.2 wheel) with our checks, DDP and
checkpointer in it; ``tests/engine/test_trainer.py`` pins the upstream body it follows.
"""
import json
import logging
import os
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping
from detectron2.utils import comm

from ..compat import check_config_ops
from ..data.build import check_dataset_names, check_test_datasets, training_dataset_dicts
from ..data.from_config import register_datasets_from_config
from ..evaluation import build_evaluator, evaluator_type
from ..evaluation.fewshot import generalized_table
from ..evaluation.flops import ExecutedFlopsEvaluator
from ..modeling import freeze_from_config
from ..modeling.dynamic import leaves_parameters_unused
from ..modeling.meta_arch import meta_architecture_needs
from ..modeling.roi_align import use_roi_align_cpu_backward
from ..modeling.roi_heads import check_output_layer_is_used
from ..utils.io import ensure_writable_dir
from ..utils.logger import logging_is_set_up, setup_logger
from .checkpoint import DynnetCheckpointer, frozen_parts, predictor_checks
from .ddp import create_ddp_model
from .results import results_file, results_per_dataset, write_results
from .visualize import visualize_predictions

logger = logging.getLogger(__name__)


class UntrainedModelError(ValueError):
    """Evaluation was asked for a model that has no trained weights."""


def check_test_data(cfg, *, required: bool) -> None:
    """Every ``DATASETS.TEST`` is registered and usable (at least one when ``required``) and has
    an evaluator the meta-architecture can be evaluated with; shared by training,
    ``--eval-only`` and the trainers methods add."""
    needs = meta_architecture_needs(cfg)
    for name in cfg.DATASETS.TEST:
        kind = evaluator_type(name)
        if kind not in needs.evaluator_types:
            raise ValueError(
                f"DATASETS.TEST: dataset {name!r} is evaluated by a {kind!r} evaluator, but "
                f"MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r} makes predictions for "
                f"{list(needs.evaluator_types)} evaluators; test it on a dataset of that kind")
    check_test_datasets(cfg, needs.class_count_key, required=required,
                        class_names_metadata=needs.class_names_metadata)


def training_data(cfg):
    """``DATASETS.TRAIN`` loaded and checked against the meta-architecture (its class count),
    before any training starts."""
    needs = meta_architecture_needs(cfg)
    return training_dataset_dicts(cfg, needs.class_count_key, needs.class_names_metadata,
                                  needs.training_record_keys)


def report_results(cfg, model, results) -> None:
    """After an evaluation of ``DATASETS.TEST`` (``results`` as ``DefaultTrainer.test`` returns
    them): write ``results.json``, log the generalized few-shot table where there is one, and
    write ``TEST.VIS_NUM_IMAGES`` visualizations (detectors). Main process only."""
    if not (comm.is_main_process() and cfg.DATASETS.TEST):
        return
    paths = write_results(cfg.OUTPUT_DIR, results, cfg.DATASETS.TEST)
    logger.info(f"Wrote evaluation results to {paths['primary']}")
    per_dataset = results_per_dataset(results, cfg.DATASETS.TEST)
    fewshot = {name: r for name, r in per_dataset.items()
               if any(m.startswith(("bAP", "nAP")) for task in r.values() for m in task)}
    if fewshot:
        logger.info("Generalized few-shot detection (bAP: base classes, nAP: novel "
                    f"classes):\n{generalized_table(fewshot)}")
    if cfg.TEST.VIS_NUM_IMAGES > 0 and not meta_architecture_needs(cfg).draws_predictions:
        logger.info(f"TEST.VIS_NUM_IMAGES is ignored for MODEL.META_ARCHITECTURE="
                    f"{cfg.MODEL.META_ARCHITECTURE} (nothing to draw)")
    elif cfg.TEST.VIS_NUM_IMAGES > 0:
        visualize_predictions(
            cfg, getattr(model, "module", model), cfg.DATASETS.TEST[0],
            os.path.join(cfg.OUTPUT_DIR, "visualizations"), cfg.TEST.VIS_NUM_IMAGES,
        )


OPTIMIZERS = ("SGD", "ADAM")


def module_lr_factors(model: torch.nn.Module) -> Dict[str, float]:
    """``{parameter name prefix: learning-rate factor}`` gathered from every module of ``model``
    with an ``lr_factors`` attribute (``{prefix relative to that module: factor}``)."""
    factors = {}
    for name, module in model.named_modules():
        for prefix, factor in getattr(module, "lr_factors", {}).items():
            factors[f"{name}.{prefix}" if name else prefix] = float(factor)
    return factors


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER`` over Detectron2's parameter groups, each parameter's learning rate
    times the factor of the longest :func:`module_lr_factors` prefix of its name (1 if none)."""
    kind = cfg.SOLVER.OPTIMIZER
    if kind not in OPTIMIZERS:
        raise ValueError(f"SOLVER.OPTIMIZER={kind!r}: expected one of {OPTIMIZERS}")
    factors = module_lr_factors(model)

    def lr_factor(name: str) -> float:
        prefixes = [p for p in factors if name.startswith(p)]
        return factors[max(prefixes, key=len)] if prefixes else 1.0

    params = get_default_optimizer_params(
        model, base_lr=cfg.SOLVER.BASE_LR, weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR, weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
        lr_factor_func=lr_factor if factors else None)
    if kind == "SGD":
        optimizer = torch.optim.SGD(params, lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM,
                                    nesterov=cfg.SOLVER.NESTEROV,
                                    weight_decay=cfg.SOLVER.WEIGHT_DECAY, foreach=True)
    else:
        optimizer = torch.optim.Adam(params, lr=cfg.SOLVER.BASE_LR,
                                     weight_decay=cfg.SOLVER.WEIGHT_DECAY, foreach=True)
    return maybe_add_gradient_clipping(cfg, optimizer)


class DynnetTrainer(DefaultTrainer):
    """DefaultTrainer whose construction order is Detectron2's, with the changes listed above."""

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging_is_set_up():
            setup_logger()
        register_datasets_from_config(cfg)
        check_dataset_names(cfg)
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        ensure_writable_dir(cfg.OUTPUT_DIR)
        model = self.build_model(cfg)  # fails first if the config needs an op missing here
        check_test_data(cfg, required=False)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False,
                                 find_unused_parameters=leaves_parameters_unused(model))
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DynnetCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self),
            frozen_parts=frozen_parts(cfg), **predictor_checks(cfg))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def train(self):
        """Train; return the metrics of the evaluation after the last iteration (if any)."""
        super().train()
        return getattr(self, "_last_eval_results", None)

    @classmethod
    def build_model(cls, cfg):
        """Detectron2's model builder, after :func:`check_config_ops`, with the parts the freeze
        keys name frozen (:func:`freeze_from_config`) and the poolers' CPU backward of
        ``MODEL.ROI_ALIGN_CPU_BACKWARD`` (:mod:`dynnet_d2.modeling.roi_align`); logs the
        device."""
        check_config_ops(cfg)
        check_output_layer_is_used(cfg)
        logger.info(f"Building the model on MODEL.DEVICE={cfg.MODEL.DEVICE} (CUDA available: "
                    f"{torch.cuda.is_available()}; {torch.get_num_threads()} intra-op thread(s))")
        model = super().build_model(cfg)
        use_roi_align_cpu_backward(model, cfg.MODEL.ROI_ALIGN_CPU_BACKWARD)
        return freeze_from_config(model, cfg)

    @classmethod
    def build_optimizer(cls, cfg, model):
        """:func:`build_optimizer`: ``SOLVER.OPTIMIZER``, modules' learning-rate factors."""
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        """The meta-architecture's training loader of the checked ``DATASETS.TRAIN``."""
        return meta_architecture_needs(cfg).build_train_loader(cfg, training_data(cfg))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name: str):
        """The meta-architecture's test loader of ``dataset_name``."""
        return meta_architecture_needs(cfg).build_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, output_folder=None) -> DatasetEvaluator:
        """The dataset's evaluator (:func:`~dynnet_d2.evaluation.build_evaluator`), with the
        mean executed backbone FLOPs for a meta-architecture that reports them."""
        evaluator = build_evaluator(cfg, dataset_name, output_folder)
        if meta_architecture_needs(cfg).reports_backbone_flops:
            return DatasetEvaluators([evaluator, ExecutedFlopsEvaluator()])
        return evaluator

    @classmethod
    def test(cls, cfg, model, evaluators=None) -> OrderedDict:
        """Evaluate on ``DATASETS.TEST``, write ``results.json`` and optional visualizations."""
        register_datasets_from_config(cfg)
        check = meta_architecture_needs(cfg).check_before_test
        for dataset_name in cfg.DATASETS.TEST if check else ():
            check(model, dataset_name)
        results = super().test(cfg, model, evaluators)
        report_results(cfg, model, results)
        return results

    @classmethod
    def evaluate_checkpoint(cls, cfg, *, resume: bool = False) -> OrderedDict:
        """``--eval-only``: the checks of training, then the trained weights, then :meth:`test`.

        The weights are the last checkpoint of ``OUTPUT_DIR`` with ``resume``, else
        ``MODEL.WEIGHTS``. No weights, or weights that do not fit the model, is an error
        (:class:`UntrainedModelError`, :class:`CheckpointMismatchError`) unless
        ``TEST.ALLOW_UNTRAINED``.
        """
        register_datasets_from_config(cfg)
        check_dataset_names(cfg)
        ensure_writable_dir(cfg.OUTPUT_DIR)
        check_test_data(cfg, required=True)
        model = cls.build_model(cfg)
        allow_untrained = cfg.TEST.ALLOW_UNTRAINED
        checkpointer = DynnetCheckpointer(model, save_dir=cfg.OUTPUT_DIR,
                                          strict=not allow_untrained,
                                          **predictor_checks(cfg, training=False))
        has_checkpoint = resume and checkpointer.has_checkpoint()
        if not (has_checkpoint or cfg.MODEL.WEIGHTS or allow_untrained):
            raise UntrainedModelError(
                "--eval-only with no weights: MODEL.WEIGHTS is empty"
                + (f" and OUTPUT_DIR={cfg.OUTPUT_DIR!r} has no checkpoint to resume"
                   if resume else "")
                + ". Name a trained checkpoint with MODEL.WEIGHTS (or --resume for the last one in "
                "OUTPUT_DIR); set TEST.ALLOW_UNTRAINED True to evaluate a randomly initialised "
                "model."
            )
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=resume)
        return cls.test(cfg, model)


# Functions ``cfg -> trainer class or None`` registered by methods, asked in order by
# :func:`trainer_class`.
TRAINER_CHOOSERS: List[Callable[[object], Optional[type]]] = []


def register_trainer_chooser(chooser: Callable[[object], Optional[type]]) -> None:
    """Let ``chooser(cfg)`` pick the trainer of a config (a class built as ``cls(cfg)``, with
    ``resume_or_load(resume=...)``, ``train()`` and ``evaluate_checkpoint(cfg)`` like
    :class:`DynnetTrainer`), or return None to leave it to the others."""
    TRAINER_CHOOSERS.append(chooser)


def trainer_class(cfg) -> type:
    """The first registered chooser's trainer for ``cfg``, else :class:`DynnetTrainer`."""
    for chooser in TRAINER_CHOOSERS:
        chosen = chooser(cfg)
        if chosen is not None:
            return chosen
    return DynnetTrainer


def build_trainer(cfg):
    """The trainer of ``cfg`` (:func:`trainer_class`), built."""
    return trainer_class(cfg)(cfg)


def train_or_reuse(cfg) -> Dict[str, dict]:
    """Train ``cfg`` with its trainer (:func:`build_trainer`; resuming an interrupted run) and
    return its evaluation; a run that already finished (``model_final.pth`` and
    ``inference/results.json`` in ``OUTPUT_DIR``) is reused."""
    output = Path(cfg.OUTPUT_DIR)
    results = results_file(output)
    if (output / "model_final.pth").is_file() and results.is_file():
        logger.info(f"Reusing the finished run in {output}")
        return json.loads(results.read_text())
    trainer = build_trainer(cfg)
    trainer.resume_or_load(resume=True)
    return trainer.train()
