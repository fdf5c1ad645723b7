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
* image classifiers (:mod:`dynnet_d2.modeling.classifier`) get the classification loaders and
  evaluator, so ``tools/train_net.py`` trains them like every detector.
"""
import logging
import os
import weakref
from collections import OrderedDict

import torch
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..compat import check_config_ops
from ..data.build import check_dataset_names, check_test_datasets, training_dataset_dicts
from ..data.classification import (
    build_classification_test_loader,
    build_classification_train_loader,
)
from ..data.from_config import register_datasets_from_config
from ..data.mappers import CheckedDatasetMapper
from ..evaluation import build_evaluator, evaluator_type
from ..evaluation.fewshot import generalized_table
from ..modeling import freeze_from_config
from ..modeling.classifier import is_classifier
from ..modeling.roi_heads import check_output_layer_is_used
from ..modeling.skipnet import leaves_parameters_unused
from ..utils.io import ensure_writable_dir
from ..utils.logger import logging_is_set_up, setup_logger
from .checkpoint import DynnetCheckpointer, frozen_parts
from .ddp import create_ddp_model
from .results import results_per_dataset, write_results
from .visualize import visualize_predictions

logger = logging.getLogger(__name__)


class UntrainedModelError(ValueError):
    """Evaluation was asked for a model that has no trained weights."""


def check_test_data(cfg, *, required: bool) -> None:
    """Every ``DATASETS.TEST`` is registered and usable (at least one when ``required``) and has
    an evaluator; shared by training, ``--eval-only`` and the cached last-layer trainer."""
    check_test_datasets(cfg, required=required)
    for name in cfg.DATASETS.TEST:
        evaluator_type(name)


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
    if cfg.TEST.VIS_NUM_IMAGES > 0 and is_classifier(cfg):
        logger.info("TEST.VIS_NUM_IMAGES is ignored for image classifiers (nothing to draw)")
    elif cfg.TEST.VIS_NUM_IMAGES > 0:
        visualize_predictions(
            cfg, getattr(model, "module", model), cfg.DATASETS.TEST[0],
            os.path.join(cfg.OUTPUT_DIR, "visualizations"), cfg.TEST.VIS_NUM_IMAGES,
        )


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
        self.checkpointer = DynnetCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self),
                                               predictor_must_fit=cfg.FEWSHOT.SHOT > 0,
                                               frozen_parts=frozen_parts(cfg))
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
        keys name frozen (:func:`freeze_from_config`); logs the device."""
        check_config_ops(cfg)
        check_output_layer_is_used(cfg)
        logger.info(f"Building the model on MODEL.DEVICE={cfg.MODEL.DEVICE} (CUDA available: "
                    f"{torch.cuda.is_available()}; {torch.get_num_threads()} intra-op thread(s))")
        return freeze_from_config(super().build_model(cfg), cfg)

    @classmethod
    def build_train_loader(cls, cfg):
        if is_classifier(cfg):
            return build_classification_train_loader(cfg, training_dataset_dicts(cfg))
        return build_detection_train_loader(
            cfg, mapper=CheckedDatasetMapper(cfg, is_train=True),
            dataset=training_dataset_dicts(cfg)
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name: str):
        if is_classifier(cfg):
            return build_classification_test_loader(cfg, dataset_name)
        return build_detection_test_loader(
            cfg, dataset_name, mapper=CheckedDatasetMapper(cfg, is_train=False)
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, output_folder=None) -> DatasetEvaluator:
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def test(cls, cfg, model, evaluators=None) -> OrderedDict:
        """Evaluate on ``DATASETS.TEST``, write ``results.json`` and optional visualizations."""
        register_datasets_from_config(cfg)
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
                                          strict=not allow_untrained)
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
