"""The reweighting detectors' support branch (thesis ch. 6, "Learning Scheme"),
:class:`SupportReweighting`, and the two-stage detector's meta-architecture ``ReweightingRCNN``:
Detectron2's ``GeneralizedRCNN`` plus the support branch and, optionally, Meta R-CNN's meta loss.

Training (one episode per iteration): one support instance per class, drawn by
:meth:`~.support.SupportPool.episode` from ``(SEED, iteration)`` out of ``DATASETS.TRAIN``
(phase 1: the base classes' data; phase 2: the K-shot set, so exactly its K instances), each
made a ``(C_in, S, S)`` support (:func:`~.support.support_input`, normalised like the query);
the reweighting module gives the episode's class vectors ``(N, r)`` for that forward (the
single-binary loss of Table 6.5: one class's support, ``(1, r)``). ``ReweightingRCNN``'s
detection losses are Detectron2's; ``loss_meta`` = cross-entropy of a linear classifier of the
class vectors against their classes (Meta R-CNN's meta loss), times ``META_LOSS_WEIGHT``.

Inference uses no supports: :meth:`SupportReweighting.compute_class_vectors` stores each class's
mean vector over its support instances (all of them, or ``MEAN_SUPPORTS_PER_CLASS`` drawn by
the seed) in the predictor; this happens whenever the model is switched to evaluation, or its
state is saved, after training steps.
"""
from contextlib import contextmanager
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.utils.events import get_event_storage
from torch import nn

from ...modeling.meta_arch import MetaArchitectureNeeds, declare_meta_architecture
from .class_vectors import ClassVectors
from .reweighting import build_reweighter
from .support import SupportPool, box_xyxy, read_image_tensor, support_input
from .surgery import PHASE_2_FIX, per_class_predictor_must_fit
from .two_stage import ReweightedOutputLayers

SUPPORT_BATCH = 32  # supports per forward of the reweighting module when averaging


class SupportSource:
    """The support examples of datasets ``names`` (loaded on first use) and their images
    (decoded once, ``image_format`` as the query's)."""

    def __init__(self, names: Sequence[str], image_format: str):
        self.names, self.image_format = tuple(names), image_format
        self._pool: Optional[SupportPool] = None
        self.image = lru_cache(maxsize=256)(
            lambda file_name: read_image_tensor(file_name, self.image_format))

    @property
    def pool(self) -> SupportPool:
        if self._pool is None:
            dicts = [d for name in self.names for d in DatasetCatalog.get(name)]
            classes = MetadataCatalog.get(self.names[0]).thing_classes
            self._pool = SupportPool(dicts, classes, " + ".join(self.names))
        return self._pool


class SupportReweighting:
    """The support branch of a reweighting meta-architecture, a mixin listed before its
    Detectron2 base class: the reweighting module, the training set's supports, the episodes
    and the stored class vectors (module docstring). The meta-architecture names the module that
    holds the vectors (:attr:`reweighted_predictor`: an ``episode_vectors`` attribute read by
    one forward, a :class:`~.class_vectors.ClassVectors` ``class_vectors``) and calls
    :meth:`init_support_branch` in its ``__init__``."""

    def init_support_branch(self, *, reweighter: nn.Module, supports: SupportSource,
                            support_input: list, support_size: int, support_context: float,
                            seed: int, mean_supports_per_class: int) -> None:
        """
        Args:
            reweighter: support ``(N, C_in, S, S)`` -> class vectors ``(N, r)``.
            supports: the training set's support examples.
            support_input, support_size, support_context: how a support is made
                (:func:`~.support.support_input`).
            seed: the episodes' seed.
            mean_supports_per_class: instances per class averaged into the stored class
                vectors (0: all).
        """
        self.reweighter, self.supports = reweighter, supports
        self.support_input, self.support_size = list(support_input), support_size
        self.support_context, self.seed = support_context, seed
        self.mean_supports_per_class = mean_supports_per_class
        self._vectors_stale = False

    @staticmethod
    def support_branch_from_config(cfg, channels: int, backbone) -> dict:
        """:meth:`init_support_branch`'s arguments for class vectors of ``channels``
        (``backbone``: the detector's)."""
        fsrw = cfg.MODEL.FSRW
        if fsrw.MEAN_SUPPORTS_PER_CLASS < 0:
            raise ValueError(f"MODEL.FSRW.MEAN_SUPPORTS_PER_CLASS={fsrw.MEAN_SUPPORTS_PER_CLASS}"
                             f": expected >= 0")
        return {"reweighter": build_reweighter(cfg, channels, backbone),
                "supports": SupportSource(cfg.DATASETS.TRAIN, cfg.INPUT.FORMAT),
                "support_input": fsrw.SUPPORT_INPUT, "support_size": fsrw.SUPPORT_SIZE,
                "support_context": fsrw.SUPPORT_CONTEXT, "seed": max(cfg.SEED, 0),
                "mean_supports_per_class": fsrw.MEAN_SUPPORTS_PER_CLASS}

    @property
    def reweighted_predictor(self) -> nn.Module:
        raise NotImplementedError

    @property
    def class_vectors(self) -> ClassVectors:
        return self.reweighted_predictor.class_vectors

    def support_tensors(self, instances) -> torch.Tensor:
        """``(record, annotation)`` pairs -> supports ``(len, C_in, S, S)`` on the model's
        device, the image normalised like the query."""
        out = []
        for record, annotation in instances:
            image = self.supports.image(record["file_name"]).to(self.device).float()
            image = (image - self.pixel_mean) / self.pixel_std
            out.append(support_input(image, box_xyxy(annotation), self.support_input,
                                     self.support_size, self.support_context))
        return torch.stack(out)

    def draw_episode(self, one_class: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """This iteration's class vectors ``(N, r)`` and their classes ``(N,)`` (``one_class``:
        the vector of one class drawn by the seed and iteration, ``(1, r)`` and ``(1,)``)."""
        pool, iteration = self.supports.pool, get_event_storage().iter
        if one_class:
            cls, instance = pool.one_class_episode(self.seed, iteration)
            classes, episode = [cls], [instance]
        else:
            classes, episode = list(range(len(pool.instances))), pool.episode(self.seed, iteration)
        vectors = self.reweighter(self.support_tensors(episode))
        return vectors, torch.tensor(classes, device=vectors.device)

    @contextmanager
    def episode_vectors(self, vectors: torch.Tensor, classes: Optional[torch.Tensor] = None):
        """The predictor uses ``vectors`` (of ``classes`` ``(N,)``, default all in order) instead
        of the stored ones inside this block; the stored ones are stale afterwards."""
        predictor = self.reweighted_predictor
        predictor.episode_vectors, predictor.episode_classes = vectors, classes
        try:
            yield
        finally:
            predictor.episode_vectors = predictor.episode_classes = None
            self._vectors_stale = True

    def refresh_class_vectors(self) -> None:
        """Store the class vectors of the current weights when training steps made them stale
        (the reweighting module in evaluation mode)."""
        if self._vectors_stale:
            training = self.reweighter.training
            self.reweighter.eval()
            self.compute_class_vectors()
            self.reweighter.train(training)

    def train(self, mode: bool = True):
        super().train(mode)
        if not mode:
            self.refresh_class_vectors()
        return self

    def state_dict(self, *args, **kwargs):
        # a checkpoint holds the class vectors of the weights it saves (model_final.pth is
        # written before the evaluation that follows training would compute them)
        self.refresh_class_vectors()
        return super().state_dict(*args, **kwargs)

    @torch.no_grad()
    def compute_class_vectors(self, source: Optional[SupportSource] = None) -> torch.Tensor:
        """Store each class's mean vector over its support instances of ``source`` (default:
        the training set's) in the predictor; returns them ``(N, r)``."""
        pool = (source or self.supports).pool
        num_classes = len(self.class_vectors.vectors)
        if len(pool.instances) != num_classes:
            raise ValueError(f"{pool.name}: {len(pool.instances)} classes; this model detects "
                             f"{num_classes}")
        rng = np.random.default_rng(self.seed)
        means = []
        for found in pool.instances:
            if 0 < self.mean_supports_per_class < len(found):
                picked = rng.choice(len(found), self.mean_supports_per_class, replace=False)
                found = [found[int(i)] for i in sorted(picked)]
            vectors = [self.reweighter(self.support_tensors(found[i:i + SUPPORT_BATCH]))
                       for i in range(0, len(found), SUPPORT_BATCH)]
            means.append(torch.cat(vectors).mean(dim=0))
        means = torch.stack(means)
        self.class_vectors.store(means, pool.class_names)
        self._vectors_stale = False
        return means


@META_ARCH_REGISTRY.register()
class ReweightingRCNN(SupportReweighting, GeneralizedRCNN):
    """``GeneralizedRCNN`` whose ROI heads' predictor is a :class:`ReweightedOutputLayers`,
    with the support branch (module docstring)."""

    @configurable
    def __init__(self, *, support_branch: dict, meta_loss_weight: float, **kwargs):
        """
        Args:
            support_branch: :meth:`SupportReweighting.init_support_branch`'s arguments.
            meta_loss_weight: weight of ``loss_meta`` (0: no meta classifier).
            kwargs: ``GeneralizedRCNN``'s.
        """
        super().__init__(**kwargs)
        predictor = self.roi_heads.box_predictor
        if not isinstance(predictor, ReweightedOutputLayers):
            raise ValueError(f"ReweightingRCNN needs MODEL.ROI_HEADS.NAME 'ReweightingROIHeads' "
                             f"(its box predictor is {type(predictor).__name__})")
        self.init_support_branch(**support_branch)
        self.meta_loss_weight = meta_loss_weight
        self.meta_classifier = (nn.Linear(predictor.reweighted_channels, predictor.num_classes)
                                if meta_loss_weight > 0 else None)

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        if cfg.MODEL.FSRW.LOSS != "softmax":
            raise ValueError(f"MODEL.FSRW.LOSS={cfg.MODEL.FSRW.LOSS!r}: the two-stage detector "
                             f"scores classes with Fast R-CNN's softmax over the classes and the "
                             f"background ('softmax'); the loss ablation is the one-stage "
                             f"detector's (ReweightingYOLO)")
        if cfg.MODEL.FSRW.META_LOSS_WEIGHT < 0:
            raise ValueError(f"MODEL.FSRW.META_LOSS_WEIGHT={cfg.MODEL.FSRW.META_LOSS_WEIGHT}: "
                             f"expected >= 0")
        predictor = ret["roi_heads"].box_predictor
        # another predictor has no reweighted channels: __init__ then names the config error
        channels = getattr(predictor, "reweighted_channels", 1)
        return {**ret, "support_branch": cls.support_branch_from_config(cfg, channels,
                                                                        ret["backbone"]),
                "meta_loss_weight": cfg.MODEL.FSRW.META_LOSS_WEIGHT}

    @property
    def reweighted_predictor(self) -> nn.Module:
        return self.roi_heads.box_predictor

    def forward(self, batched_inputs):
        if not self.training:
            return super().forward(batched_inputs)
        vectors, classes = self.draw_episode()
        with self.episode_vectors(vectors):
            losses = super().forward(batched_inputs)
        if self.meta_classifier is not None:
            losses["loss_meta"] = self.meta_loss_weight * F.cross_entropy(
                self.meta_classifier(vectors), classes)
        return losses


def check_class_vectors(model, dataset_name: str) -> None:
    """Before evaluating on ``dataset_name``: the model's class vectors (computed now when
    training steps made them stale) are those of the test set's classes."""
    model = getattr(model, "module", model)  # DDP
    model.refresh_class_vectors()
    model.class_vectors.check_class_names(
        MetadataCatalog.get(dataset_name).thing_classes, dataset_name)


declare_meta_architecture("ReweightingRCNN", MetaArchitectureNeeds(
    "MODEL.ROI_HEADS.NUM_CLASSES", predictor_must_fit=per_class_predictor_must_fit,
    predictor_fix=PHASE_2_FIX,
    check_before_test=check_class_vectors))
