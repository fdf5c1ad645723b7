"""Backbones registered in Detectron2's BACKBONE_REGISTRY: narrow ResNet-18/34 + FPN and
MobileNetV2 + FPN. The bottom-up builders are plain functions the FPN builders use."""
from .basic_resnet import build_basic_resnet_backbone, build_basic_resnet_fpn_backbone
from .mobilenet import (
    MobileNetV2Backbone,
    build_mobilenet_v2_backbone,
    build_mobilenet_v2_fpn_backbone,
)

__all__ = [
    "build_basic_resnet_backbone", "build_basic_resnet_fpn_backbone",
    "MobileNetV2Backbone", "build_mobilenet_v2_backbone", "build_mobilenet_v2_fpn_backbone",
]
