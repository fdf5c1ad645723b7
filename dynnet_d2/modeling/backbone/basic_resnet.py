"""Narrow ResNet-18/34 (basic blocks) for CPU budgets, built from Detectron2's own blocks.

Detectron2's ``build_resnet_backbone`` insists on ``RES2_OUT_CHANNELS = 64`` for R18/R34.
These builders honour any width: stage ``i`` (res2..res5) has ``RES2_OUT_CHANNELS * 2**i``
channels, so ``STEM_OUT_CHANNELS = RES2_OUT_CHANNELS = 32`` is a half-width R18 with about a
quarter of the FLOPs. Keys used: ``MODEL.RESNETS.{DEPTH, NORM, STEM_OUT_CHANNELS,
RES2_OUT_CHANNELS, OUT_FEATURES}``, ``MODEL.BACKBONE.FREEZE_AT`` and ``MODEL.FPN.*``; setting
``MODEL.RESNETS.DEFORM_ON_PER_STAGE`` or ``RES5_DILATION`` is an error (not implemented here).
"""
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import FPN, ResNet
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem

from .fpn import check_unsupported_options, fpn_on

BLOCKS_PER_STAGE = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


def build_basic_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """ResNet with basic blocks and configurable width (see module docstring)."""
    check_unsupported_options(cfg)
    depth = cfg.MODEL.RESNETS.DEPTH
    if depth not in BLOCKS_PER_STAGE:
        raise ValueError(
            f"MODEL.RESNETS.DEPTH={depth} is not supported by build_basic_resnet_backbone; "
            f"expected one of {sorted(BLOCKS_PER_STAGE)}"
        )
    norm = cfg.MODEL.RESNETS.NORM
    in_channels = cfg.MODEL.RESNETS.STEM_OUT_CHANNELS
    out_channels = cfg.MODEL.RESNETS.RES2_OUT_CHANNELS
    stem = BasicStem(in_channels=input_shape.channels, out_channels=in_channels, norm=norm)
    stages = []
    for idx, num_blocks in enumerate(BLOCKS_PER_STAGE[depth]):
        first_stride = 1 if idx == 0 else 2
        stages.append(
            ResNet.make_stage(
                block_class=BasicBlock,
                num_blocks=num_blocks,
                stride_per_block=[first_stride] + [1] * (num_blocks - 1),
                in_channels=in_channels,
                out_channels=out_channels,
                norm=norm,
            )
        )
        in_channels, out_channels = out_channels, out_channels * 2
    return ResNet(stem, stages, out_features=cfg.MODEL.RESNETS.OUT_FEATURES,
                  freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_basic_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:func:`build_basic_resnet_backbone` with Detectron2's FPN on top (P2-P6)."""
    return fpn_on(build_basic_resnet_backbone(cfg, input_shape), cfg)
