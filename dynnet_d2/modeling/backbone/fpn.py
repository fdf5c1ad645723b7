"""Detectron2's FPN (P2-P6) on any bottom-up backbone, from ``MODEL.FPN.*``."""
from detectron2.modeling.backbone import FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool


def fpn_on(bottom_up: Backbone, cfg) -> FPN:
    """FPN over ``MODEL.FPN.IN_FEATURES`` of ``bottom_up`` with a max-pooled P6 (as Detectron2's R-FPN)."""
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
