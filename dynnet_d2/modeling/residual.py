"""The residual blocks of a backbone, for the methods that wrap them (SkipNet gates whole
blocks, DeepMoE the channels inside them), and the backbone that wraps a base backbone."""
from typing import Dict, List, Tuple

from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone
from detectron2.modeling.backbone.resnet import CNNBlockBase
from torch import nn


class WrappedBackbone(Backbone):
    """A backbone built around ``self.base`` (set by the subclass), whose outputs, size
    divisibility and padding constraints are the base's."""

    base: Backbone

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return self.base.output_shape()

    @property
    def size_divisibility(self) -> int:
        return self.base.size_divisibility

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return self.base.padding_constraints


def residual_blocks(module: nn.Module) -> List[Tuple[nn.Module, str, CNNBlockBase]]:
    """(parent, child name, block) of every residual block (a Detectron2 ``CNNBlockBase`` with a
    ``shortcut`` attribute) in ``module``, in registration (= execution) order."""
    found = []
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, CNNBlockBase) and hasattr(child, "shortcut"):
                found.append((parent, name, child))
    return found
