"""SkipNet (thesis ch. 2). Importing this package registers ``build_skipnet_backbone`` in
Detectron2's BACKBONE_REGISTRY: any residual backbone (``MODEL.SKIPNET.BASE_BACKBONE``, e.g. the
CIFAR-style ResNet or Detectron2's ResNet / ResNet-FPN) with a gate before every residual block,
for :class:`~dynnet_d2.modeling.classifier.ImageClassifier` and ``GeneralizedRCNN`` alike; it
implements the dynamic-compute protocol (:mod:`dynnet_d2.modeling.dynamic`). Also its config
keys (:mod:`.config`); the benchmark's measurements and plots are in :mod:`.analysis`, its arms
and report in :mod:`.benchmark` (tools/benchmark_skipnet.py)."""
from . import config  # noqa: F401  (registers add_skipnet_config)
from .gated import (
    GatedBlock,
    SkipNetBackbone,
    build_skipnet_backbone,
    reinforce_loss,
    residual_blocks,
    straight_through,
)
from .gates import GATE_TYPES, FFGateI, FFGateII, RNNGate

__all__ = ["GatedBlock", "SkipNetBackbone", "build_skipnet_backbone", "reinforce_loss",
           "residual_blocks", "straight_through", "GATE_TYPES", "FFGateI", "FFGateII", "RNNGate"]
