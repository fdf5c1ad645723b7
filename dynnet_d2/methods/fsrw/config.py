"""FSRW's config keys (``MODEL.FSRW``), registered into
:func:`dynnet_d2.config.add_dynnet_config`."""
from detectron2.config import CfgNode as CN

from ...config import register_method_config


@register_method_config
def add_fsrw_config(cfg: CN) -> None:
    # FSRW (thesis ch. 6; dynnet_d2/methods/fsrw/): class vectors from support examples
    # reweight the query's meta features per class (Eq. 6.1).
    cfg.MODEL.FSRW = CN()
    # FSRW_REWEIGHTER_REGISTRY name of the reweighting module M ("LightReweighter": a light CNN
    # ending in global max pooling).
    cfg.MODEL.FSRW.REWEIGHTER = "LightReweighter"
    # Channels of LightReweighter's convolution-ReLU-2x2-max-pool layers before its last
    # convolution (which gives the class vector).
    cfg.MODEL.FSRW.REWEIGHTER_DIMS = [32, 64, 128, 256]
    # What a support example is made of (Table 6.6): "image" plus any of "mask" (a binary
    # channel, 1 inside the box) and "object" (the box alone, resized); stacked in that order.
    cfg.MODEL.FSRW.SUPPORT_INPUT = ["image", "mask"]
