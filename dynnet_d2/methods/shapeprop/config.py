"""ShapeProp's config keys (``MODEL.SHAPEPROP``), registered into
:func:`dynnet_d2.config.add_dynnet_config`."""
from detectron2.config import CfgNode as CN

from ...config import register_method_config


@register_method_config
def add_shapeprop_config(cfg: CN) -> None:
    # ShapeProp (thesis ch. 8; dynnet_d2/methods/shapeprop/): MODEL.ROI_HEADS.NAME
    # "ShapePropROIHeads" with MODEL.ROI_MASK_HEAD.NAME "ShapePropMaskHead".
    cfg.MODEL.SHAPEPROP = CN()
    # IoU above which a proposal is a positive bag of a ground-truth box's class (Eq. 8.2).
    cfg.MODEL.SHAPEPROP.MIL_IOU = 0.5
    # 2-D aggregation of a saliency map into its bag score (Eq. 8.3): "avg" or "max".
    cfg.MODEL.SHAPEPROP.MIL_AGGREGATION = "avg"
    # Weight of the MIL loss (loss_mil).
    cfg.MODEL.SHAPEPROP.MIL_LOSS_WEIGHT = 1.0
    # Fraction in (0, 1] of each image's sampled background proposals that enter the MIL loss as
    # negative bags (redrawn every iteration; every foreground proposal always does). Chosen on
    # shapes_val (tools/benchmark_shapeprop.py --suite validation, 2026-12-06): novel mask AP
    # 26.4 with every negative, 14.7 with 0.25, 10.0 with 0.1.
    cfg.MODEL.SHAPEPROP.MIL_NEGATIVE_FRACTION = 1.0
    # Conv-ReLU layers of the saliency ("activating") head (1, as the reference code's
    # CONV_LAYERS (256,); 2 before the second pass).
    cfg.MODEL.SHAPEPROP.SALIENCY_NUM_CONV = 1
    # Their channels.
    cfg.MODEL.SHAPEPROP.SALIENCY_CONV_DIM = 64
    # Latent channels C of the propagation (16 in the thesis).
    cfg.MODEL.SHAPEPROP.LATENT_DIM = 16
    # Window r of the propagation kernels (odd; 3 in the thesis).
    cfg.MODEL.SHAPEPROP.WINDOW = 3
    # Message-passing steps of Eq. 8.4; <= 0 means max(H, W) of the RoI features.
    cfg.MODEL.SHAPEPROP.STEPS = 0
    # One kernel shared by all latent channels (the channel-agnostic variant of Table 8.4).
    cfg.MODEL.SHAPEPROP.CHANNEL_AGNOSTIC = False
    # Conv-ReLU layers of the saliency encoder and of the kernel predictor.
    cfg.MODEL.SHAPEPROP.PROPAGATION_NUM_CONV = 2
    # Channels of the kernel predictor's layers.
    cfg.MODEL.SHAPEPROP.PROPAGATION_CONV_DIM = 64
    # The kernel predictor reads the saliency head's conv layers instead of its own (the
    # reference code's SHARE_FEATURE; False before the second pass).
    cfg.MODEL.SHAPEPROP.SHARE_FEATURES = True
    # Kernel size (odd) of the convolution that predicts the propagation kernels (1 as in the
    # reference code; 3 before the second pass).
    cfg.MODEL.SHAPEPROP.KERNEL_CONV_SIZE = 1
    # What is concatenated to the mask head's input: "activation" (the Shape Activation, ReLU,
    # divided by its maximum, re-encoded by convolutions; thesis Sec. 8.3 and the reference code)
    # or "latent" (the propagation's LATENT_DIM latent channels).
    cfg.MODEL.SHAPEPROP.FUSION = "activation"
    # Convolutions that re-encode the Shape Activation for FUSION "activation".
    cfg.MODEL.SHAPEPROP.FUSION_NUM_CONV = 2
    # Their channels (the channels added to the mask head's input).
    cfg.MODEL.SHAPEPROP.FUSION_CONV_DIM = 16
    # Weight of the Shape Activation's reconstruction loss (loss_shape).
    cfg.MODEL.SHAPEPROP.SHAPE_LOSS_WEIGHT = 1.0
