"""CIFAR-style ResNet-(6n+2) (He et al. 2016, §4.2), the base network of SkipNet on small images
(thesis §2.3: depths 38, 74, 110, 152).

A 3x3 stem of ``W`` channels, then three stages ``res2``, ``res3``, ``res4`` of ``n`` basic
blocks with ``W``, ``2W``, ``4W`` channels and strides 1, 2, 2. The blocks are Detectron2's
``BasicBlock`` (so the shortcut of a block that changes shape is a 1x1 projection, the
"option B" of the ResNet paper), which lets :mod:`dynnet_d2.methods.skipnet` gate them like
the blocks of any Detectron2 ResNet. Input ``(B, C, H, W)``; output ``{name: (B, C_s, H/s, W/s)}``
with ``s`` the stage's stride (1, 2, 4 times ``STEM_STRIDE``).
"""
from typing import Dict, List, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.resnet import BasicBlock
from torch import nn
from torch.nn import functional as F

STAGE_NAMES = ("res2", "res3", "res4")


def blocks_per_stage(depth: int) -> int:
    """``n`` of a ResNet-(6n+2); ``ValueError`` naming the key for any other depth."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"MODEL.CIFAR_RESNET.DEPTH={depth} is not 6n+2 with n >= 1 "
                         f"(e.g. 20, 38, 74, 110)")
    return (depth - 2) // 6


class CifarResNet(Backbone):
    """ResNet-(6n+2) for small images (see module docstring)."""

    @configurable
    def __init__(self, *, in_channels: int, depth: int, width: int, stem_stride: int = 1,
                 norm: str = "BN", out_features: Sequence[str] = ("res4",)):
        """
        Args:
            in_channels: channels of the input images.
            depth: 6n + 2 (n basic blocks per stage).
            width: channels W of the stem and the first stage (then 2W, 4W).
            stem_stride: stride of the 3x3 stem.
            norm: normalization of every convolution.
            out_features: the stage outputs returned (res2, res3, res4).
        """
        super().__init__()
        unknown = sorted(set(out_features) - set(STAGE_NAMES))
        if unknown or not out_features:
            raise ValueError(f"MODEL.CIFAR_RESNET.OUT_FEATURES={list(out_features)}: expected a "
                             f"non-empty subset of {list(STAGE_NAMES)}")
        n = blocks_per_stage(depth)
        self.stem = Conv2d(in_channels, width, kernel_size=3, stride=stem_stride, padding=1,
                           bias=False, norm=get_norm(norm, width))
        self.stage_names: List[str] = []
        self._out_feature_channels: Dict[str, int] = {}
        self._out_feature_strides: Dict[str, int] = {}
        channels, stride = width, stem_stride
        for index, name in enumerate(STAGE_NAMES):
            out_channels = width * 2 ** index
            first_stride = 1 if index == 0 else 2
            blocks = [BasicBlock(channels if i == 0 else out_channels, out_channels,
                                 stride=first_stride if i == 0 else 1, norm=norm)
                      for i in range(n)]
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            channels, stride = out_channels, stride * first_stride
            self._out_feature_channels[name] = out_channels
            self._out_feature_strides[name] = stride
        self._out_features = list(out_features)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        resnet = cfg.MODEL.CIFAR_RESNET
        return {"in_channels": input_shape.channels, "depth": resnet.DEPTH,
                "width": resnet.WIDTH, "stem_stride": resnet.STEM_STRIDE, "norm": resnet.NORM,
                "out_features": list(resnet.OUT_FEATURES)}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        x = F.relu(self.stem(x))
        outputs = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {name: ShapeSpec(channels=self._out_feature_channels[name],
                                stride=self._out_feature_strides[name])
                for name in self._out_features}


@BACKBONE_REGISTRY.register()
def build_cifar_resnet_backbone(cfg, input_shape: ShapeSpec) -> CifarResNet:
    """ResNet-(6n+2) from ``MODEL.CIFAR_RESNET.*``."""
    return CifarResNet(cfg, input_shape)
