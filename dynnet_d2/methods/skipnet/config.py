"""SkipNet's config keys (``MODEL.SKIPNET``), registered into
:func:`dynnet_d2.config.add_dynnet_config`."""
from detectron2.config import CfgNode as CN

from ...config import register_method_config


@register_method_config
def add_skipnet_config(cfg: CN) -> None:
    # SkipNet (thesis ch. 2; dynnet_d2/methods/skipnet/): a gate before every residual block
    # of a residual backbone decides per input whether the block runs (Eq. 2.1).
    cfg.MODEL.SKIPNET = CN()
    # BACKBONE_REGISTRY name of the residual backbone whose blocks are gated, e.g.
    # "build_cifar_resnet_backbone" or Detectron2's "build_resnet_backbone".
    cfg.MODEL.SKIPNET.BASE_BACKBONE = "build_cifar_resnet_backbone"
    # Gate design (Fig. 2.3): "ffgate1" (2x2 max-pool, two 3x3 convs, pool, fc), "ffgate2"
    # (one 3x3 stride-2 conv, pool, fc) or "rnn" (pool, projection, one LSTM shared by all gates).
    cfg.MODEL.SKIPNET.GATE_TYPE = "rnn"
    # Hidden size of the RNN gate's LSTM (10 in the thesis) and of the projection feeding it.
    cfg.MODEL.SKIPNET.RNN_HIDDEN = 10
    # Training stage: "SP" supervised pre-training, hard gates forward and soft backward
    # (Eq. 2.7); "HRL" hybrid reinforcement learning, sampled gates + REINFORCE (Eq. 2.5-2.6,
    # image classifiers only); "SOFT" soft gates (Highway-style baseline, hard at inference);
    # "SDV" random skipping at SDV_SKIP_RATE in training and inference (stochastic-depth variant).
    cfg.MODEL.SKIPNET.STAGE = "SP"
    # Cost weight alpha of the skipping reward in Eq. 2.5 (HRL); >= 0.
    cfg.MODEL.SKIPNET.ALPHA = 0.1
    # Weight beta of the prediction loss in the relaxed reward; < 0 means alpha / N as in the
    # thesis (N = number of gated blocks).
    cfg.MODEL.SKIPNET.BETA = -1.0
    # HRL: keep every BatchNorm of the backbone (gates included) in evaluation mode, i.e. its
    # SP statistics: sampled gate patterns change what reaches later blocks, so statistics
    # updated under sampling do not match the deterministic gates of inference.
    cfg.MODEL.SKIPNET.HRL_FREEZE_BN = True
    # SDV: probability that a block is skipped, per input and block.
    cfg.MODEL.SKIPNET.SDV_SKIP_RATE = 0.5
    # Inference: "skip" runs a block only on the inputs whose gate executes it (gather, block,
    # scatter); "mask" computes every block and multiplies by the 0/1 gate (the reference code).
    cfg.MODEL.SKIPNET.INFERENCE = "skip"
    # At batch 1 on the CPU, an RNN gate decides with one compiled function (numba: pooling, LSTM
    # step, projection) instead of PyTorch ops; False keeps the PyTorch path (the reference).
    cfg.MODEL.SKIPNET.COMPILED_GATES = True
