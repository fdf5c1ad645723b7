"""``DynnetTrainer``: Detectron2's DefaultTrainer with what it lacks for us.

* DDP also on CPU (gloo) — see :mod:`dynnet_d2.engine.ddp`;
* atomic checkpoints — :class:`AtomicDetectionCheckpointer`;
* evaluator chosen from dataset metadata and ``OUTPUT_DIR/inference/results.json`` written;
* clear errors before training: unwritable ``OUTPUT_DIR``, ops missing from this Detectron2,
  empty datasets, class-count mismatch, unreadable images (named).
"""
import logging
import os
import weakref
from collections import OrderedDict

from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..compat import check_config_ops
from ..data.build import check_test_datasets, training_dataset_dicts
from ..data.mappers import CheckedDatasetMapper
from ..evaluation import build_evaluator
from ..utils.io import ensure_writable_dir
from .checkpoint import AtomicDetectionCheckpointer
from .ddp import create_ddp_model
from .results import write_results
from .visualize import visualize_predictions


class DynnetTrainer(DefaultTrainer):
    """DefaultTrainer whose construction order is Detectron2's, with the changes listed above."""

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        ensure_writable_dir(cfg.OUTPUT_DIR)
        model = self.build_model(cfg)  # fails first if the config needs an op missing here
        check_test_datasets(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicDetectionCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
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
        """Detectron2's model builder, after :func:`check_config_ops`."""
        check_config_ops(cfg)
        return super().build_model(cfg)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(
            cfg, mapper=CheckedDatasetMapper(cfg, is_train=True), dataset=training_dataset_dicts(cfg)
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name: str):
        return build_detection_test_loader(cfg, dataset_name, mapper=CheckedDatasetMapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, output_folder=None) -> DatasetEvaluator:
        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def test(cls, cfg, model, evaluators=None) -> OrderedDict:
        """Evaluate on ``DATASETS.TEST``, write ``results.json`` and optional visualizations."""
        results = super().test(cfg, model, evaluators)
        if comm.is_main_process() and cfg.DATASETS.TEST:
            paths = write_results(cfg.OUTPUT_DIR, results, cfg.DATASETS.TEST)
            logging.getLogger(__name__).info(f"Wrote evaluation results to {paths['primary']}")
            if cfg.TEST.VIS_NUM_IMAGES > 0:
                visualize_predictions(
                    cfg, getattr(model, "module", model), cfg.DATASETS.TEST[0],
                    os.path.join(cfg.OUTPUT_DIR, "visualizations"), cfg.TEST.VIS_NUM_IMAGES,
                )
        return results
