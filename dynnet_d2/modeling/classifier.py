"""``ImageClassifier``: image classification on Detectron2's registries.

A backbone from ``BACKBONE_REGISTRY`` -> global average pooling of one backbone output
(``MODEL.CLASSIFIER.IN_FEATURE``) -> a linear layer to ``MODEL.CLASSIFIER.NUM_CLASSES`` logits.

Inputs are Detectron2-style lists of dicts: ``"image"`` a ``(C, H, W)`` tensor in
``INPUT.FORMAT`` (every image of a batch the same size), and in training ``"label"`` (int).
Training returns ``{"loss_cls": mean cross-entropy}`` plus the backbone's own losses for the
per-image losses when it has any (SkipNet's REINFORCE term). Inference returns, per image,
``{"scores": (num_classes,) softmax probabilities, "gflops": executed GFLOPs}``: fvcore's count of
the static network, minus what the blocks a dynamic backbone skipped for that image would have
cost (:mod:`dynnet_d2.modeling.flops`).
"""
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.utils.events import get_event_storage
from torch import nn
from torch.nn import functional as F

from .class_count import register_class_count_key
from .flops import ExecutedFlops

register_class_count_key("ImageClassifier", "MODEL.CLASSIFIER.NUM_CLASSES")
# Meta-architectures trained on classification data (labels, not boxes).
CLASSIFIER_META_ARCHITECTURES = {"ImageClassifier"}


def is_classifier(cfg) -> bool:
    """Whether ``cfg``'s meta-architecture is an image classifier."""
    return cfg.MODEL.META_ARCHITECTURE in CLASSIFIER_META_ARCHITECTURES


@META_ARCH_REGISTRY.register()
class ImageClassifier(nn.Module):
    """Backbone, global average pooling, linear classifier (see module docstring)."""

    @configurable
    def __init__(self, *, backbone: Backbone, num_classes: int, in_feature: str,
                 pixel_mean, pixel_std):
        super().__init__()
        self.backbone = backbone
        shapes = backbone.output_shape()
        if in_feature not in shapes:
            raise ValueError(f"MODEL.CLASSIFIER.IN_FEATURE={in_feature!r} is not an output of "
                             f"the backbone; expected one of {sorted(shapes)}")
        if num_classes < 2:
            raise ValueError(f"MODEL.CLASSIFIER.NUM_CLASSES={num_classes}: expected >= 2")
        self.in_feature = in_feature
        self.head = nn.Linear(shapes[in_feature].channels, num_classes)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        blocks = getattr(backbone, "gated_blocks", {})
        self.flops = ExecutedFlops(self, self._static_logits,
                                   [f"backbone.{path}.block" for path in blocks])

    @classmethod
    def from_config(cls, cfg):
        if len(cfg.MODEL.PIXEL_MEAN) != len(cfg.MODEL.PIXEL_STD):
            raise ValueError(f"MODEL.PIXEL_MEAN {list(cfg.MODEL.PIXEL_MEAN)} and "
                             f"MODEL.PIXEL_STD {list(cfg.MODEL.PIXEL_STD)} differ in length")
        backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        in_feature = cfg.MODEL.CLASSIFIER.IN_FEATURE or backbone._out_features[-1]
        return {"backbone": backbone, "num_classes": cfg.MODEL.CLASSIFIER.NUM_CLASSES,
                "in_feature": in_feature, "pixel_mean": cfg.MODEL.PIXEL_MEAN,
                "pixel_std": cfg.MODEL.PIXEL_STD}

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

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) of normalized ``images``."""
        features = self.backbone(images)[self.in_feature]
        return self.head(features.mean(dim=(2, 3)))

    def _static_logits(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`logits` with every block executed (for fvcore's static count)."""
        static = getattr(self.backbone, "static", None)
        if static is None:
            return self.logits(images)
        self.backbone.static = True
        try:
            return self.logits(images)
        finally:
            self.backbone.static = static

    def forward(self, batched_inputs: List[Dict]):
        images = self.preprocess(batched_inputs)
        if not self.training:  # fvcore's static count first: its trace runs the backbone too
            self.flops.static(tuple(images.shape[1:]), self.device)
        logits = self.logits(images)
        decisions = getattr(self.backbone, "gate_decisions", None)
        if self.training:
            labels = torch.as_tensor([d["label"] for d in batched_inputs], device=self.device)
            per_image = F.cross_entropy(logits, labels, reduction="none")
            losses = {"loss_cls": per_image.mean()}
            backbone_losses = getattr(self.backbone, "losses", None)
            if backbone_losses is not None:
                losses.update(backbone_losses(per_image))
            if decisions is not None:
                get_event_storage().put_scalar("skipnet/executed_fraction",
                                               float(decisions.float().mean()))
            return losses
        scores = F.softmax(logits, dim=1)
        if decisions is None or getattr(self.backbone, "inference", "skip") == "mask":
            decisions = torch.ones((images.shape[0], len(self.flops.block_paths)))
        flops = self.flops.per_image(tuple(images.shape[1:]), decisions, self.device)
        return [{"scores": s, "gflops": float(f) / 1e9} for s, f in zip(scores, flops)]
