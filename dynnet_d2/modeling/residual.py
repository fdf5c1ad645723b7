"""The residual blocks of a backbone, for the methods that wrap them (SkipNet gates whole
blocks, DeepMoE the channels inside them)."""
from typing import List, Tuple

from detectron2.modeling.backbone.resnet import CNNBlockBase
from torch import nn


def residual_blocks(module: nn.Module) -> List[Tuple[nn.Module, str, CNNBlockBase]]:
    """(parent, child name, block) of every residual block (a Detectron2 ``CNNBlockBase`` with a
    ``shortcut`` attribute) in ``module``, in registration (= execution) order."""
    found = []
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, CNNBlockBase) and hasattr(child, "shortcut"):
                found.append((parent, name, child))
    return found
