"""A registry of the heads of :class:`~dynnet_d2.modeling.classifier.ImageClassifier`, chosen by
``MODEL.CLASSIFIER.HEAD`` (Detectron2 has no such registry). A head maps the pooled backbone
feature ``(B, C)`` to class logits ``(B, K)``; it is built as ``head(cfg, in_channels)``. A head
with losses of its own (beyond the classifier's cross-entropy) has a method ``losses(labels)``
-> ``{name: loss}``, called by the classifier after each training forward with the labels
``(B,)``.
"""
from detectron2.utils.registry import Registry
from torch import nn

CLASSIFIER_HEAD_REGISTRY = Registry("CLASSIFIER_HEAD")
CLASSIFIER_HEAD_REGISTRY.__doc__ = """Heads of ImageClassifier selected by MODEL.CLASSIFIER.HEAD."""


@CLASSIFIER_HEAD_REGISTRY.register()
class LinearHead(nn.Linear):
    """One linear layer, ``MODEL.CLASSIFIER.NUM_CLASSES`` outputs (an ``nn.Linear``, so a
    checkpoint's ``head.weight`` / ``head.bias`` load as they are)."""

    def __init__(self, cfg, in_channels: int):
        super().__init__(in_channels, cfg.MODEL.CLASSIFIER.NUM_CLASSES)


def build_classifier_head(cfg, in_channels: int) -> nn.Module:
    """The head ``MODEL.CLASSIFIER.HEAD`` names, on ``in_channels`` pooled features."""
    return CLASSIFIER_HEAD_REGISTRY.get(cfg.MODEL.CLASSIFIER.HEAD)(cfg, in_channels)
