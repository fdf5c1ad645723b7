"""Cached last-layer fine-tuning: when only the box predictor trains (TFA, thesis §7.2), the
frozen detector's proposals and box-head features are cached (:mod:`.cache`) and each iteration
and evaluation runs the predictor alone (:mod:`.trainer`). :func:`build_trainer` picks this path
or :class:`~dynnet_d2.engine.DynnetTrainer` from the config."""
import logging

from detectron2.utils import comm

from ..trainer import DynnetTrainer
from .cache import CacheBudgetError, CacheNotApplicableError, why_not_cacheable
from .trainer import CachedLastLayerTrainer, evaluate_cached

logger = logging.getLogger(__name__)


def build_trainer(cfg):
    """:class:`CachedLastLayerTrainer` when the config trains only the box predictor and
    ``FEWSHOT.CACHE.ENABLED`` (one process), else :class:`DynnetTrainer`."""
    reason = why_not_cacheable(cfg)
    if reason is None and comm.get_world_size() > 1:
        reason = f"{comm.get_world_size()} processes"
    if reason is None:
        logger.info("Only the box predictor trains: fine-tuning from the feature cache "
                    "(FEWSHOT.CACHE.ENABLED False for the full model)")
        return CachedLastLayerTrainer(cfg)
    if cfg.FEWSHOT.SHOT > 0:
        logger.info(f"Fine-tuning the full model: {reason}")
    return DynnetTrainer(cfg)


__all__ = ["CacheBudgetError", "CacheNotApplicableError", "CachedLastLayerTrainer",
           "build_trainer", "evaluate_cached", "why_not_cacheable"]
