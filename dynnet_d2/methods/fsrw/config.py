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
    # ending in global max pooling; "BackboneReweighter": the detector's backbone, shared).
    cfg.MODEL.FSRW.REWEIGHTER = "LightReweighter"
    # What the reweighting module's pooled output goes through: "none" (FSRW's vectors) or
    # "sigmoid" (Meta R-CNN's class-attentive vectors, in (0, 1)).
    cfg.MODEL.FSRW.VECTOR_ACTIVATION = "none"
    # Channels of LightReweighter's convolution-ReLU-2x2-max-pool layers before its last
    # convolution (which gives the class vector).
    cfg.MODEL.FSRW.REWEIGHTER_DIMS = [32, 64, 128, 256]
    # How the reweighting module's last layer (the one giving the class vectors) starts: "he"
    # (Darknet's) or "identity" (weights N(0, 0.01), bias 1: every vector starts near all-ones).
    cfg.MODEL.FSRW.REWEIGHTER_INIT = "he"
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
    # Both detectors' class scorer: "shared" (FSRW's: one scorer for every class, a class
    # told apart by its vector alone) or "per_class" (Meta R-CNN's: the predictor's row of class
    # i scores class i's reweighted feature; its rows are shaped by the class count).
    cfg.MODEL.FSRW.CLASS_SCORER = "shared"
    # Weight of Meta R-CNN's meta loss (cross-entropy of a linear classifier of the class
    # vectors); 0: none.
    cfg.MODEL.FSRW.META_LOSS_WEIGHT = 0.0
    # The one-stage detector (ReweightingYOLO, the thesis' form; one_stage.py):
    # its number of classes (the two-stage detector's is MODEL.ROI_HEADS.NUM_CLASSES).
    cfg.MODEL.FSRW.NUM_CLASSES = 20
    # The backbone level whose meta features are reweighted (Table 6.4: which layer).
    cfg.MODEL.FSRW.IN_FEATURE = "p4"
    # Output channels of the 3x3 convolutions (GroupNorm, leaky ReLU) from that level to the
    # meta features (the last is m, the class vectors' length); []: the level itself.
    cfg.MODEL.FSRW.META_CONV_DIMS = [128]
    # Anchors [width, height] in input pixels (YOLOv2 keeps 5); these cover the synthetic
    # shapes' boxes (5th-95th percentile 21-133 px).
    cfg.MODEL.FSRW.ANCHORS = [[24, 24], [38, 38], [60, 60], [92, 92], [136, 136]]
    # The class loss (Table 6.5): "softmax" across the classes (Eq. 6.3), "multi_binary" (one
    # binary cross-entropy per class) or "single_binary" (one class's support per iteration).
    cfg.MODEL.FSRW.LOSS = "softmax"
    # A slot whose decoded box overlaps a box of its class by more is not a negative (YOLOv2).
    cfg.MODEL.FSRW.IGNORE_IOU = 0.6
    # Negatives sampled into the objectness loss per positive (the thesis balances them).
    cfg.MODEL.FSRW.NEGATIVES_PER_POSITIVE = 3.0
    # Inference: detections scoring at most this are dropped.
    cfg.MODEL.FSRW.SCORE_THRESH_TEST = 0.05
    # Inference: per-class NMS IoU threshold.
    cfg.MODEL.FSRW.NMS_THRESH_TEST = 0.45
    # Inference: the best candidates per image kept before NMS.
    cfg.MODEL.FSRW.TOPK_CANDIDATES_TEST = 1000
