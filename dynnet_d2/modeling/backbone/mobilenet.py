"""MobileNetV2 (Sandler et al., 2018) as a Detectron2 backbone, with FPN, for ImageNet-initialised
detectors on a CPU budget.

The layers are torchvision's ``mobilenet_v2().features`` (indices kept, so torchvision's ImageNet
checkpoint loads by key suffix through ``MODEL.WEIGHTS``), cut after block 17: the final 1x1
conv to 1280 channels is classification-only. Outputs are named like ResNet's stages at the same
strides so FPN/RPN/ROI configs carry over: ``res2`` (stride 4, 24 ch, after block 3), ``res3``
(stride 8, 32 ch, block 6), ``res4`` (stride 16, 96 ch, block 13), ``res5`` (stride 32, 320 ch,
block 17). ``MODEL.BACKBONE.FREEZE_AT`` = k freezes the stem (k >= 1) and res2..res(k) as in
Detectron2's ResNet; ``MODEL.MOBILENET.NORM`` = ``FrozenBN`` (default) fixes every BatchNorm to
its ImageNet statistics, ``BN`` trains them.
"""
from typing import Dict, List

import torch
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import FPN, Backbone
from torch import nn
from torchvision.models import mobilenet_v2

from .fpn import check_unsupported_options, fpn_on

# Output name -> (index of the last torchvision block of the stage, stride). The stem is
# blocks 0-1 (stride 2).
STAGES = {"res2": (3, 4), "res3": (6, 8), "res4": (13, 16), "res5": (17, 32)}
STEM_LAST_BLOCK = 1
NORMS = ("FrozenBN", "BN")


class MobileNetV2Backbone(Backbone):
    """torchvision's MobileNetV2 feature blocks 0-17 returning the stage outputs in
    ``out_features``."""

    def __init__(self, out_features: List[str], width_mult: float = 1.0, norm: str = "FrozenBN",
                 freeze_at: int = 0):
        super().__init__()
        unknown = [name for name in out_features if name not in STAGES]
        if unknown:
            raise ValueError(f"MODEL.MOBILENET.OUT_FEATURES has {unknown}; expected a subset of "
                             f"{list(STAGES)}")
        if norm not in NORMS:
            raise ValueError(f"MODEL.MOBILENET.NORM={norm!r} is not supported; "
                             f"expected one of {NORMS}")
        last = max(STAGES[name][0] for name in out_features)
        self.features = nn.Sequential(
            *list(mobilenet_v2(weights=None, width_mult=width_mult).features)[: last + 1]
        )
        if norm == "FrozenBN":
            self.features = FrozenBatchNorm2d.convert_frozen_batchnorm(self.features)
        self._out_features = [name for name in STAGES if name in out_features]
        self._block_to_name = {STAGES[name][0]: name for name in self._out_features}
        self._out_feature_strides = {name: STAGES[name][1] for name in self._out_features}
        self._out_feature_channels = {
            name: _out_channels(self.features[STAGES[name][0]]) for name in self._out_features
        }
        self._freeze(freeze_at)

    def _freeze(self, freeze_at: int) -> None:
        """Freeze the stem (``freeze_at >= 1``) and stages res2..res{freeze_at}
        (``freeze_at >= 2``)."""
        if freeze_at <= 0:
            return
        stage_ends = [STEM_LAST_BLOCK] + [STAGES[f"res{k}"][0] for k in range(2, 6)]
        last_frozen = stage_ends[min(freeze_at, len(stage_ends)) - 1]
        for block in list(self.features)[: last_frozen + 1]:
            for param in block.parameters():
                param.requires_grad = False
            FrozenBatchNorm2d.convert_frozen_batchnorm(block)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        outputs = {}
        for idx, block in enumerate(self.features):
            x = block(x)
            if idx in self._block_to_name:
                outputs[self._block_to_name[idx]] = x
        return outputs


def _out_channels(block: nn.Module) -> int:
    """Channel count of a torchvision MobileNetV2 block's output (its last conv)."""
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


@BACKBONE_REGISTRY.register()
def build_mobilenet_v2_backbone(cfg, input_shape: ShapeSpec) -> MobileNetV2Backbone:
    """MobileNetV2 from ``MODEL.MOBILENET.{OUT_FEATURES, WIDTH_MULT, NORM}`` and
    ``MODEL.BACKBONE.FREEZE_AT``."""
    check_unsupported_options(cfg)
    if input_shape.channels != 3:
        raise ValueError(f"MobileNetV2 expects 3 input channels (len(MODEL.PIXEL_MEAN)); "
                         f"got {input_shape.channels}")
    return MobileNetV2Backbone(
        out_features=list(cfg.MODEL.MOBILENET.OUT_FEATURES),
        width_mult=cfg.MODEL.MOBILENET.WIDTH_MULT,
        norm=cfg.MODEL.MOBILENET.NORM,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
    )


@BACKBONE_REGISTRY.register()
def build_mobilenet_v2_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:func:`build_mobilenet_v2_backbone` with Detectron2's FPN on top (P2-P6)."""
    return fpn_on(build_mobilenet_v2_backbone(cfg, input_shape), cfg)
