"""``ImageClassifier``: image classification on Detectron2's registries.

A backbone from ``BACKBONE_REGISTRY`` -> global average pooling of one backbone output
(``MODEL.CLASSIFIER.IN_FEATURE``) -> a head from ``CLASSIFIER_HEAD_REGISTRY``
(``MODEL.CLASSIFIER.HEAD``; by default one linear layer to ``MODEL.CLASSIFIER.NUM_CLASSES``
logits).

Inputs are Detectron2-style lists of dicts: ``"image"`` a ``(C, H, W)`` tensor in
``INPUT.FORMAT`` (every image of a batch the same size), and in training ``"label"`` (int).
Inputs may carry ``"features"`` instead, the pooled backbone features ``(C,)`` of
:meth:`ImageClassifier.pooled_features` cached beforehand (:mod:`dynnet_d2.engine.feature_cache`):
then only the head runs and the outputs carry no ``"gflops"``.
Training returns ``{"loss_cls": mean cross-entropy}`` plus the head's own losses (a head with a
``losses(labels)`` method, e.g. TAFE-Net's embedding loss; a head whose ``replaces_loss_cls`` is
True is trained by those alone), plus, for a backbone of the
dynamic-compute protocol (:mod:`dynnet_d2.modeling.dynamic`), its own losses from the
per-image losses and the labels (SkipNet's REINFORCE term, DeepMoE's gate and embedding losses),
and logs its executed fraction. Inference
returns, per image, ``{"scores": (num_classes,) softmax probabilities, "gflops": executed
GFLOPs}``: fvcore's count of the static network, minus what a dynamic backbone did not execute
for that image (:mod:`dynnet_d2.modeling.flops`).
"""
from typing import Dict, List, Optional

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.utils.events import get_event_storage
from torch import nn
from torch.nn import functional as F

from ..data.classification import (
    build_classification_test_loader,
    build_classification_train_loader,
)
from .classifier_heads import build_classifier_head
from .dynamic import DynamicCompute
from .flops import ExecutedFlops
from .meta_arch import MetaArchitectureNeeds, declare_meta_architecture

CLASSIFIER_NEEDS = MetaArchitectureNeeds(
    "MODEL.CLASSIFIER.NUM_CLASSES", build_train_loader=build_classification_train_loader,
    build_test_loader=build_classification_test_loader, evaluator_types=("classification",),
    draws_predictions=False, predictor_must_fit=lambda cfg: False)
declare_meta_architecture("ImageClassifier", CLASSIFIER_NEEDS)


@META_ARCH_REGISTRY.register()
class ImageClassifier(nn.Module):
    """Backbone, global average pooling, linear classifier (see module docstring)."""

    @configurable
    def __init__(self, *, backbone: Backbone, head: nn.Module, num_classes: int,
                 in_feature: str, pixel_mean, pixel_std):
        """
        Args:
            backbone: a Detectron2 backbone; its output ``in_feature`` is pooled.
            head: pooled features (B, C) -> logits (B, ``num_classes``).
            num_classes: number of classes (>= 2).
            in_feature: the backbone output to classify.
            pixel_mean, pixel_std: per-channel normalization of the input images.
        """
        super().__init__()
        self.backbone = backbone
        shapes = backbone.output_shape()
        if in_feature not in shapes:
            raise ValueError(f"MODEL.CLASSIFIER.IN_FEATURE={in_feature!r} is not an output of "
                             f"the backbone; expected one of {sorted(shapes)}")
        if num_classes < 2:
            raise ValueError(f"MODEL.CLASSIFIER.NUM_CLASSES={num_classes}: expected >= 2")
        self.in_feature = in_feature
        self.head = head
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.flops = ExecutedFlops(self, self._static_logits, {
            f"backbone.{path}": fixed
            for path, fixed in (self.dynamic.costed_modules() if self.dynamic else {}).items()})

    @property
    def dynamic(self) -> Optional[DynamicCompute]:
        """The backbone when it executes part of itself per input, else None (a property, not a
        second registered name of the backbone, so its weights are saved once)."""
        return self.backbone if isinstance(self.backbone, DynamicCompute) else None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints of 2026-12-05/06 saved the backbone twice, also as "dynamic."; the copy is
        # dropped (the same tensors load from "backbone.")
        for key in [k for k in state_dict if k.startswith(prefix + "dynamic.")]:
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @classmethod
    def from_config(cls, cfg):
        if len(cfg.MODEL.PIXEL_MEAN) != len(cfg.MODEL.PIXEL_STD):
            raise ValueError(f"MODEL.PIXEL_MEAN {list(cfg.MODEL.PIXEL_MEAN)} and "
                             f"MODEL.PIXEL_STD {list(cfg.MODEL.PIXEL_STD)} differ in length")
        backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        in_feature = cfg.MODEL.CLASSIFIER.IN_FEATURE or backbone._out_features[-1]
        channels = backbone.output_shape()[in_feature].channels if (
            in_feature in backbone.output_shape()) else 1
        return {"backbone": backbone, "head": build_classifier_head(cfg, channels),
                "num_classes": cfg.MODEL.CLASSIFIER.NUM_CLASSES, "in_feature": in_feature,
                "pixel_mean": cfg.MODEL.PIXEL_MEAN, "pixel_std": cfg.MODEL.PIXEL_STD}

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess(self, batched_inputs: List[Dict]) -> torch.Tensor:
        """The images (B, C, H, W), normalized."""
        images = [d["image"] for d in batched_inputs]
        shapes = {tuple(i.shape) for i in images}
        if len(shapes) > 1:
            raise ValueError(f"ImageClassifier needs images of one size per batch, got "
                             f"{sorted(shapes)}; resize them in the dataset mapper")
        images = torch.stack(images).to(self.device, non_blocking=True).float()
        if images.shape[1] != self.pixel_mean.shape[0]:
            raise ValueError(f"images have {images.shape[1]} channels but MODEL.PIXEL_MEAN has "
                             f"{self.pixel_mean.shape[0]} values; match INPUT.FORMAT and "
                             f"MODEL.PIXEL_MEAN / PIXEL_STD")
        return (images - self.pixel_mean) / self.pixel_std

    def pooled_features(self, images: torch.Tensor) -> torch.Tensor:
        """The head's input (B, C): the backbone's ``in_feature`` of normalized ``images``,
        average-pooled."""
        return self.backbone(images)[self.in_feature].mean(dim=(2, 3))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) of normalized ``images``."""
        return self.head(self.pooled_features(images))

    def _static_logits(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`logits` with every part executed (for fvcore's static count)."""
        if self.dynamic is None:
            return self.logits(images)
        with self.dynamic.static_mode():
            return self.logits(images)

    def _cached_logits(self, batched_inputs: List[Dict]) -> torch.Tensor:
        """Logits of inputs carrying their pooled features (``"features"`` ``(C,)``)."""
        if self.dynamic is not None:
            raise ValueError("inputs with cached \"features\" skip the backbone, but this one "
                             "executes part of itself per input; feed images")
        return self.head(torch.stack([d["features"] for d in batched_inputs]).to(self.device))

    def forward(self, batched_inputs: List[Dict]):
        if "features" in batched_inputs[0]:
            images, executed = None, None
            logits = self._cached_logits(batched_inputs)
        else:
            images = self.preprocess(batched_inputs)
            if not self.training:  # fvcore's static count first: its trace runs the backbone
                self.flops.static(tuple(images.shape[1:]), self.device)
            logits = self.logits(images)
            executed = None if self.dynamic is None else self.dynamic.executed_fraction
        if self.training:
            labels = torch.as_tensor([d["label"] for d in batched_inputs], device=self.device)
            per_image = F.cross_entropy(logits, labels, reduction="none")
            # a head trained by losses of its own only (replaces_loss_cls) has no loss_cls
            losses = {} if getattr(self.head, "replaces_loss_cls", False) else {
                "loss_cls": per_image.mean()}
            head_losses = getattr(self.head, "losses", None)
            if head_losses is not None:  # a head with losses of its own (classifier_heads)
                losses.update(head_losses(labels))
            if self.dynamic is not None:
                losses.update(self.dynamic.losses(per_image, labels))
                get_event_storage().put_scalar(f"{self.dynamic.metric_prefix}/executed_fraction",
                                               float(executed.float().mean()))
            return losses
        scores = F.softmax(logits, dim=1)
        if images is None:  # cached features: the backbone did not run here
            return [{"scores": s} for s in scores]
        if executed is None:
            executed = torch.ones((images.shape[0], 0))
        flops = self.flops.per_image(tuple(images.shape[1:]), executed, self.device)
        return [{"scores": s, "gflops": float(f) / 1e9} for s, f in zip(scores, flops)]
