"""TAFE-Net's config keys (``MODEL.TAFE``), registered into
:func:`dynnet_d2.config.add_dynnet_config`."""
from detectron2.config import CfgNode as CN

from ...config import register_method_config


@register_method_config
def add_tafe_config(cfg: CN) -> None:
    # TAFE-Net (thesis ch. 5; dynnet_d2/methods/tafe/): a meta learner generates the weights of
    # the dynamic layers on the image features from a task description (MODEL.CLASSIFIER.HEAD
    # "TAFEHead").
    cfg.MODEL.TAFE = CN()
    # JSON file {class name: [floats]}: the task description of every class of the training
    # set (attribute vectors, encodings of (attribute, object) pairs, mean example features).
    cfg.MODEL.TAFE.DESCRIPTIONS = ""
    # Layer sizes of the task-embedding network (an MLP, ReLU between; the thesis: 3 x 2048).
    cfg.MODEL.TAFE.EMBEDDING_DIMS = [256, 256, 256]
    # Output sizes of the factorised dynamic layers giving the task-aware feature embedding
    # (the thesis: 3 x 2048).
    cfg.MODEL.TAFE.FEATURE_DIMS = [256, 256, 256]
    # Weight beta of the embedding loss (Eq. 5.8; the thesis: 0.1).
    cfg.MODEL.TAFE.BETA = 0.1
    # Learning rate of the task-embedding network relative to SOLVER.BASE_LR (the thesis: 0.1,
    # Adam at 1e-4 for the rest and 1e-5 for it).
    cfg.MODEL.TAFE.EMBEDDING_LR_FACTOR = 0.1
