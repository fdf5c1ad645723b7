"""Cached last-layer fine-tuning (``FEWSHOT.CACHE``): when only the box predictor trains (TFA,
thesis §7.2), the frozen detector's proposals and box-head features are cached
(:mod:`.features`) and each iteration and evaluation runs the predictor alone (:mod:`.trainer`).
Importing this package registers :func:`choose_cached_trainer` as a trainer chooser of
:func:`dynnet_d2.engine.build_trainer`."""
import logging
from typing import Optional

from detectron2.utils import comm

from ....engine.trainer import register_trainer_chooser
from .features import CacheBudgetError, CacheNotApplicableError, why_not_cacheable
from .trainer import CachedLastLayerTrainer, evaluate_cached

logger = logging.getLogger(__name__)


def choose_cached_trainer(cfg) -> Optional[type]:
    """:class:`CachedLastLayerTrainer` when the config trains only the box predictor and
    ``FEWSHOT.CACHE.ENABLED`` (one process); else None (the full model, with the reason logged
    for a K-shot fine-tuning)."""
    reason = why_not_cacheable(cfg)
    if reason is None and comm.get_world_size() > 1:
        reason = f"{comm.get_world_size()} processes"
    if reason is None:
        logger.info("Only the box predictor trains: fine-tuning from the feature cache "
                    "(FEWSHOT.CACHE.ENABLED False for the full model)")
        return CachedLastLayerTrainer
    if cfg.FEWSHOT.SHOT > 0:
        logger.info(f"Fine-tuning the full model: {reason}")
    return None


register_trainer_chooser(choose_cached_trainer)

__all__ = ["CacheBudgetError", "CacheNotApplicableError", "CachedLastLayerTrainer",
           "choose_cached_trainer", "evaluate_cached", "why_not_cacheable"]
