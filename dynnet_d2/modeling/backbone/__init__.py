"""Backbones registered in Detectron2's BACKBONE_REGISTRY: narrow ResNet-18/34 + FPN,
MobileNetV2 + FPN and the CIFAR-style ResNet-(6n+2). The bottom-up builders are plain functions
the FPN builders use."""
from .basic_resnet import build_basic_resnet_backbone, build_basic_resnet_fpn_backbone
from .cifar_resnet import CifarResNet, build_cifar_resnet_backbone
from .mobilenet import (
    MobileNetV2Backbone,
    build_mobilenet_v2_backbone,
    build_mobilenet_v2_fpn_backbone,
)

__all__ = [
    "build_basic_resnet_backbone", "build_basic_resnet_fpn_backbone",
    "CifarResNet", "build_cifar_resnet_backbone",
    "MobileNetV2Backbone", "build_mobilenet_v2_backbone", "build_mobilenet_v2_fpn_backbone",
]
