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
    # Support examples: a square window centred on the box, SUPPORT_CONTEXT times its longer
    # side (>= 1; outside the image: the pixel mean), resized to SUPPORT_SIZE x SUPPORT_SIZE.
    cfg.MODEL.FSRW.SUPPORT_SIZE = 64
    # See SUPPORT_SIZE.
    cfg.MODEL.FSRW.SUPPORT_CONTEXT = 2.0
    # How many of the reweighted feature's channels a class vector scales (the rest are shared
    # by every class; Table 6.4's "half"); -1: all.
    cfg.MODEL.FSRW.REWEIGHTED_CHANNELS = -1
    # Support instances per class averaged into the class vectors stored for inference, drawn
    # by SEED; 0: all of them (phase 2: the K shots).
    cfg.MODEL.FSRW.MEAN_SUPPORTS_PER_CLASS = 0
    # Weight of Meta R-CNN's meta loss (cross-entropy of a linear classifier of the class
    # vectors); 0: none.
    cfg.MODEL.FSRW.META_LOSS_WEIGHT = 0.0
