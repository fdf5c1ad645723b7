"""Models: importing this module registers every dynnet_d2 component with Detectron2's
registries (and ours, :mod:`.roi_heads`)."""
from . import (
    backbone,  # noqa: F401  (registers backbones)
    classifier,  # noqa: F401  (registers the ImageClassifier meta-architecture)
    idk,  # noqa: F401  (registers the IDK cascade fitting methods)
    partial_masks,  # noqa: F401  (registers the partially supervised mask head)
    pretrained,  # noqa: F401  (registers the imagenet:// path handler)
    shapeprop,  # noqa: F401  (registers ShapeProp's ROI heads and mask head)
    skipnet,  # noqa: F401  (registers the SkipNet backbone)
    tfa,  # noqa: F401  (registers TFA's ROI heads and cosine box predictor)
)
from .freeze import freeze_from_config

__all__ = ["freeze_from_config"]
