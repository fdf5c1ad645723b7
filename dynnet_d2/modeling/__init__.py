"""Models: importing this module registers every dynnet_d2 component with Detectron2's
registries."""
from . import (
    backbone,  # noqa: F401  (registers backbones)
    pretrained,  # noqa: F401  (registers the imagenet:// path handler)
)
