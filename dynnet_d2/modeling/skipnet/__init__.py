"""SkipNet (thesis ch. 2). Importing this package registers ``build_skipnet_backbone`` in
Detectron2's BACKBONE_REGISTRY: any residual backbone (``MODEL.SKIPNET.BASE_BACKBONE``, e.g. the
CIFAR-style ResNet or Detectron2's ResNet / ResNet-FPN) with a gate before every residual block,
for :class:`~dynnet_d2.modeling.classifier.ImageClassifier` and ``GeneralizedRCNN`` alike."""
from .gated import (
    GatedBlock,
    SkipNetBackbone,
    build_skipnet_backbone,
    leaves_parameters_unused,
    reinforce_loss,
    residual_blocks,
    straight_through,
)
from .gates import GATE_TYPES, FFGateI, FFGateII, RNNGate

__all__ = ["GatedBlock", "SkipNetBackbone", "build_skipnet_backbone", "leaves_parameters_unused",
           "reinforce_loss",
           "residual_blocks", "straight_through", "GATE_TYPES", "FFGateI", "FFGateII", "RNNGate"]
