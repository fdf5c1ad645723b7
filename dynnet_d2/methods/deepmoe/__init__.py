"""DeepMoE (thesis ch. 3). Importing this package registers ``build_deepmoe_backbone`` in
Detectron2's BACKBONE_REGISTRY: a residual backbone (``MODEL.DEEPMOE.BASE_BACKBONE``: the
CIFAR-style ResNet, Detectron2's ResNet) whose blocks' inner channels are gated per input by a
shallow embedding network and multi-headed sparse gates, executed as smaller convolutions over
the open channels; it implements the dynamic-compute protocol
(:mod:`dynnet_d2.modeling.dynamic`), so ``ImageClassifier`` trains it with its losses and counts
its executed FLOPs. Also its config keys (:mod:`.config`)."""
from . import config  # noqa: F401  (registers add_deepmoe_config)
from .embedding import MultiHeadGating, ShallowEmbedding, gate_l1_loss
from .gated import DeepMoEBackbone, MoEBlock, build_deepmoe_backbone

__all__ = ["DeepMoEBackbone", "MoEBlock", "MultiHeadGating", "ShallowEmbedding",
           "build_deepmoe_backbone", "gate_l1_loss"]
