"""Last-layer fine-tuning from feature caches (:mod:`.cache`): TFA's stage 2 (thesis §7.2)
with only the box predictor computed in each iteration.

Each iteration draws ``SOLVER.IMS_PER_BATCH`` records as Detectron2's training loader does
(``TrainingSampler``'s shuffled epochs, ``AspectRatioGroupedDataset``'s batches), an augmentation
per record as the mapper would (uniform over ``INPUT.MIN_SIZE_TRAIN``, flipped with
``RandomFlip``'s probability), then samples RoIs with the ROI heads' own
``label_and_sample_proposals`` (ground truth already appended in the cache) and computes the
predictor's own ``losses`` on the cached features of the sampled rows. Optimizer, LR schedule,
checkpoints (``--resume``), ``metrics.json`` and the evaluation's ``results.json`` are those of
:class:`~dynnet_d2.engine.DynnetTrainer`.

Evaluation (:func:`evaluate_cached`) runs the predictor on a test set's cached proposals, then
the predictor's ``inference`` (box decoding, score threshold, per-class NMS), Detectron2's
rescaling to the original image size and the dataset's evaluator.
"""
import logging
import time
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from typing import Dict, Iterator, List

import numpy as np
import torch
from detectron2.data.common import AspectRatioGroupedDataset
from detectron2.data.samplers import TrainingSampler
from detectron2.engine import SimpleTrainer, TrainerBase, hooks
from detectron2.engine.defaults import default_writers
from detectron2.modeling import GeneralizedRCNN
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from ....data.build import check_dataset_names
from ....data.from_config import register_datasets_from_config
from ....engine.checkpoint import DynnetCheckpointer, frozen_parts, predictor_checks
from ....engine.results import results_per_dataset
from ....engine.trainer import DynnetTrainer, check_test_data, report_results, training_data
from ....evaluation.fewshot import check_results_defined
from ....utils.io import ensure_writable_dir
from ....utils.logger import logging_is_set_up, setup_logger
from .features import (
    EvaluationCache,
    TrainingCache,
    evaluation_cache,
    flip_probability,
    proposals_of,
    targets_of,
    training_cache,
)

logger = logging.getLogger(__name__)


def cached_batches(cache: TrainingCache, batch_size: int, flip_prob: float,
                   seed: int) -> Iterator[List[dict]]:
    """Endless batches of ``{"entry", "width", "height"}`` items, drawn as Detectron2's training
    loader draws records and the mapper draws augmentations."""
    rng = np.random.default_rng(seed)
    sizes = sorted({a.short_edge for a in cache.augmentations})
    has_flip = any(a.flip for a in cache.augmentations)
    index = {(a.short_edge, a.flip): i for i, a in enumerate(cache.augmentations)}

    def items():
        for r in TrainingSampler(len(cache.records), shuffle=True, seed=seed):
            size = sizes[rng.integers(len(sizes))]
            flip = bool(has_flip and rng.random() < flip_prob)
            entry = cache.entries[r][index[(size, flip)]]
            height, width = (int(s) for s in entry["image_size"])
            yield {"entry": entry, "width": width, "height": height}

    return iter(AspectRatioGroupedDataset(items(), batch_size))


@contextmanager
def _ground_truth_already_appended(roi_heads):
    """The cache holds proposals with the ground truth appended; do not append it twice."""
    append = roi_heads.proposal_append_gt
    roi_heads.proposal_append_gt = False
    try:
        yield
    finally:
        roi_heads.proposal_append_gt = append


def cached_losses(model: GeneralizedRCNN, entries: List[Dict[str, torch.Tensor]]
                  ) -> Dict[str, torch.Tensor]:
    """The box predictor's training losses on cached entries (one per image of the batch): the
    ROI heads' RoI sampling, then the predictor on the sampled rows' features."""
    device = model.device
    proposals, targets, first = [], [], 0
    for entry in entries:
        proposals.append(proposals_of(entry, device, first))
        targets.append(targets_of(entry, device))
        first += len(entry["boxes"])
    heads = model.roi_heads
    with _ground_truth_already_appended(heads):
        sampled = heads.label_and_sample_proposals(proposals, targets)
    features = torch.cat([e["features"] for e in entries]).to(device=device, dtype=torch.float32)
    rows = torch.cat([s.cache_row for s in sampled])
    predictions = heads.box_predictor(features[rows])
    return heads.box_predictor.losses(predictions, sampled)


@torch.no_grad()
def cached_inference(model: GeneralizedRCNN, cache: EvaluationCache,
                     indices: List[int]) -> List[dict]:
    """Detectron2's outputs (``{"instances"}`` in original image coordinates) of the test images
    ``indices`` from their cached proposals and features."""
    device = model.device
    entries = [cache.entries[i] for i in indices]
    proposals = [proposals_of(e, device) for e in entries]
    features = torch.cat([e["features"] for e in entries]).to(device=device, dtype=torch.float32)
    predictor = model.roi_heads.box_predictor
    instances, _ = predictor.inference(predictor(features), proposals)
    return GeneralizedRCNN._postprocess(instances, [cache.records[i] for i in indices],
                                        [p.image_size for p in proposals])


def evaluate_cached(cfg, model: GeneralizedRCNN, batch_size: int = 64) -> "OrderedDict":
    """Evaluate ``model``'s predictor on every ``DATASETS.TEST`` from the test caches; returns
    what ``DefaultTrainer.test`` returns (and writes the same ``results.json``)."""
    results = OrderedDict()
    was_training = model.training
    model.eval()
    try:
        for name in cfg.DATASETS.TEST:
            cache = evaluation_cache(cfg, model, name)
            evaluator = DynnetTrainer.build_evaluator(cfg, name)
            evaluator.reset()
            start = time.perf_counter()
            for first in range(0, len(cache.records), batch_size):
                indices = list(range(first, min(first + batch_size, len(cache.records))))
                evaluator.process([cache.records[i] for i in indices],
                                  cached_inference(model, cache, indices))
            logger.info(f"Cached inference on {name}: {len(cache.records)} images in "
                        f"{time.perf_counter() - start:.2f} s")
            results[name] = evaluator.evaluate()
    finally:
        model.train(was_training)
    if len(results) == 1:
        results = list(results.values())[0]
    report_results(cfg, model, results)
    return results


class CachedLastLayerTrainer(TrainerBase):
    """Fine-tunes the box predictor of a frozen detector from feature caches.

    Same interface as :class:`DynnetTrainer` (``resume_or_load``, ``train`` returning the final
    evaluation), same checks, checkpoints and outputs; one process only. ``resume_or_load``
    refuses weights that leave a frozen part unloaded (:func:`~dynnet_d2.engine.checkpoint.
    frozen_parts`), before any feature is cached.
    """

    def __init__(self, cfg):
        super().__init__()
        if not logging_is_set_up():
            setup_logger()
        if comm.get_world_size() > 1:
            raise ValueError("cached last-layer fine-tuning runs in one process; set "
                             "FEWSHOT.CACHE.ENABLED False to fine-tune with several")
        register_datasets_from_config(cfg)
        check_dataset_names(cfg)
        ensure_writable_dir(cfg.OUTPUT_DIR)
        self.model = DynnetTrainer.build_model(cfg)
        check_test_data(cfg, required=False)
        self.dataset_dicts = training_data(cfg)
        self.optimizer = DynnetTrainer.build_optimizer(cfg, self.model)
        self.scheduler = DynnetTrainer.build_lr_scheduler(cfg, self.optimizer)
        self.checkpointer = DynnetCheckpointer(
            self.model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self),
            frozen_parts=frozen_parts(cfg), **predictor_checks(cfg),
            optimizer=self.optimizer, scheduler=self.scheduler)
        self.cfg = cfg
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self._last_eval_results = None
        self.register_hooks(self._build_hooks())

    def _build_hooks(self):
        cfg = self.cfg

        def evaluate():
            self._last_eval_results = evaluate_cached(cfg, self.model)
            return self._last_eval_results

        return [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD),
            hooks.EvalHook(cfg.TEST.EVAL_PERIOD, evaluate),
            hooks.PeriodicWriter(default_writers(cfg.OUTPUT_DIR, self.max_iter), period=20),
        ]

    @classmethod
    def evaluate_checkpoint(cls, cfg, *, resume: bool = False) -> "OrderedDict":
        """``MODEL.WEIGHTS`` (or with ``resume`` the last checkpoint of ``OUTPUT_DIR``) loaded
        strictly and evaluated from the test caches (:func:`evaluate_cached`)."""
        register_datasets_from_config(cfg)
        check_dataset_names(cfg)
        check_test_data(cfg, required=True)
        model = DynnetTrainer.build_model(cfg)
        checkpointer = DynnetCheckpointer(model, cfg.OUTPUT_DIR, strict=True,
                                          **predictor_checks(cfg, training=False))
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=resume)
        return evaluate_cached(cfg, model)

    def resume_or_load(self, resume: bool = True) -> None:
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1

    def train(self):
        """Build or load the caches, train, evaluate; return the evaluation's metrics (an
        evaluation without a single defined metric raises, see
        :func:`~dynnet_d2.evaluation.fewshot.check_results_defined`)."""
        cache = training_cache(self.cfg, self.model, self.dataset_dicts)
        seed = self.cfg.SEED if self.cfg.SEED >= 0 else None
        if seed is not None:
            # building the caches draws random numbers (each data-loader pass does), reading
            # them does not: seed again so a run is the same whether its caches existed or not
            seed_all_rng(seed)
        self._batches = cached_batches(cache, self.cfg.SOLVER.IMS_PER_BATCH,
                                       flip_probability(self.cfg), seed)
        self.model.train()
        super().train(self.start_iter, self.max_iter)
        if self._last_eval_results is not None:
            for name, results in results_per_dataset(self._last_eval_results,
                                                     self.cfg.DATASETS.TEST).items():
                check_results_defined(results, f"the evaluation on {name} after fine-tuning")
        return self._last_eval_results

    def run_step(self):
        start = time.perf_counter()
        entries = [item["entry"] for item in next(self._batches)]
        data_time = time.perf_counter() - start
        loss_dict = cached_losses(self.model, entries)
        losses = sum(loss_dict.values())
        self.optimizer.zero_grad()
        losses.backward()
        SimpleTrainer.write_metrics(loss_dict, data_time, self.iter)
        self.optimizer.step()
