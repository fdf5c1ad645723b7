"""DeepMoE's config keys (``MODEL.DEEPMOE``), registered into
:func:`dynnet_d2.config.add_dynnet_config`."""
from detectron2.config import CfgNode as CN

from ...config import register_method_config


@register_method_config
def add_deepmoe_config(cfg: CN) -> None:
    # DeepMoE (thesis ch. 3; dynnet_d2/methods/deepmoe/): a shallow embedding network and
    # multi-headed sparse gates select and re-weight the inner channels of every residual block.
    cfg.MODEL.DEEPMOE = CN()
    # BACKBONE_REGISTRY name of the residual backbone whose blocks are gated, e.g.
    # "build_cifar_resnet_backbone" or Detectron2's "build_resnet_backbone".
    cfg.MODEL.DEEPMOE.BASE_BACKBONE = "build_cifar_resnet_backbone"
    # Width factor of the base backbone (wide-DeepMoE: 2; narrow-DeepMoE: 1), an integer >= 1.
    cfg.MODEL.DEEPMOE.WIDEN = 1
    # Gated outputs of a bottleneck block (Fig. 3.2): "A" its 3x3 conv, "B" its first 1x1 conv
    # and its 3x3 conv. Basic blocks gate their first conv.
    cfg.MODEL.DEEPMOE.BOTTLENECK_VARIANT = "B"
    # E, the number of latent experts: the size of the embedding's mixture weights.
    cfg.MODEL.DEEPMOE.NUM_EXPERTS = 16
    # Stride-2 3x3 convolutions of the shallow embedding network (thesis: 4 for CIFAR, 5 for
    # ImageNet-size inputs).
    cfg.MODEL.DEEPMOE.EMBEDDING_LAYERS = 4
    # Channels of every convolution of the embedding network.
    cfg.MODEL.DEEPMOE.EMBEDDING_CHANNELS = 16
    # Normalization of the embedding network's convolutions.
    cfg.MODEL.DEEPMOE.EMBEDDING_NORM = "BN"
    # lambda of Eq. 3.7: weight of the gates' L1 norm summed over every gated layer (Eq. 3.8).
    cfg.MODEL.DEEPMOE.LAMBDA = 0.01
    # mu of Eq. 3.7: weight of the embedding classifier's cross-entropy (thesis CIFAR: 1).
    cfg.MODEL.DEEPMOE.MU = 1.0
    # The fine-tuning stage (thesis §3.2: lambda = mu = 0): the embedding and gating networks
    # fixed, only the base network trains; MODEL.WEIGHTS must be the first stage's weights.
    cfg.MODEL.DEEPMOE.FREEZE_GATING = False
    # Evaluation: "slice" computes only the open channels as smaller dense convolutions;
    # "mask" computes every channel and multiplies by the gates (the reference; training too).
    cfg.MODEL.DEEPMOE.INFERENCE = "slice"
    # "slice" at batch > 1: "union" (the channels open for any image, one convolution) or
    # "group" (images grouped by their pattern of open channels, one convolution per group).
    cfg.MODEL.DEEPMOE.BATCH_EXECUTION = "union"
