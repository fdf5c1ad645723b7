"""Shared modeling: backbones (narrow ResNet, CIFAR-style ResNet, MobileNetV2, FPN on them),
``imagenet://`` weights, the ImageClassifier meta-architecture, Detectron2's detector and
semantic segmentor with dynamic backbones, freezing by config, executed-FLOP
counting and the registries and declarations methods plug into (box predictors, ...). Importing
this package registers its components.

May import: utils, config, compat, data, evaluation; never engine, a method or experiments.
"""
from . import (
    backbone,  # noqa: F401  (registers backbones)
    classifier,  # noqa: F401  (registers the ImageClassifier meta-architecture)
    dynamic_meta_arch,  # noqa: F401  (registers Dynamic{GeneralizedRCNN,SemanticSegmentor})
    pretrained,  # noqa: F401  (registers the imagenet:// path handler)
)
from .freeze import freeze_from_config

__all__ = ["freeze_from_config"]
