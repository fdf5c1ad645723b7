"""Detectron2's FPN (P2-P6) on any bottom-up backbone, from ``MODEL.FPN.*``, and the check that a
config asks nothing of our backbones that they cannot do."""
from detectron2.modeling.backbone import FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool


def check_unsupported_options(cfg) -> None:
    """``ValueError`` naming the key and ``MODEL.BACKBONE.NAME`` when the config asks for a
    Detectron2 ResNet option our backbones do not implement (they would silently ignore it):
    deformable convolution or a dilated res5."""
    resnets = cfg.MODEL.RESNETS
    asked = {}
    if any(resnets.DEFORM_ON_PER_STAGE):
        asked["DEFORM_ON_PER_STAGE"] = (list(resnets.DEFORM_ON_PER_STAGE), "all False")
    if resnets.RES5_DILATION != 1:
        asked["RES5_DILATION"] = (resnets.RES5_DILATION, "1")
    for key, (value, off) in asked.items():
        raise ValueError(
            f"MODEL.RESNETS.{key}={value!r} is not supported by MODEL.BACKBONE.NAME="
            f"{cfg.MODEL.BACKBONE.NAME}; set it to {off}, or use Detectron2's "
            f"build_resnet_fpn_backbone, which implements it"
        )


def fpn_on(bottom_up: Backbone, cfg) -> FPN:
    """FPN over ``MODEL.FPN.IN_FEATURES`` of ``bottom_up`` with a max-pooled P6 (as Detectron2's
    R-FPN)."""
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
