"""Freezing parts of a detector by config, with fsdet's keys (TFA fine-tunes the last layer only):

* ``MODEL.BACKBONE.FREEZE``: the whole backbone (FPN included);
* ``MODEL.PROPOSAL_GENERATOR.FREEZE``: the RPN;
* ``MODEL.ROI_HEADS.FREEZE_FEAT``: the box head (the RoI feature extractor before the predictor).

A frozen part gets ``requires_grad=False`` and its BatchNorm layers become
``FrozenBatchNorm2d`` with their current statistics: a frozen feature extractor must not drift
through running statistics either (fsdet only stopped the gradients). ``DynnetTrainer.build_model``
applies it; call :func:`freeze_from_config` yourself after ``detectron2.modeling.build_model``.
"""
from typing import Dict

from detectron2.layers import FrozenBatchNorm2d
from torch import nn

from ..config import config_value

# config key -> attribute path of the part it freezes
FREEZE_KEYS: Dict[str, str] = {
    "MODEL.BACKBONE.FREEZE": "backbone",
    "MODEL.PROPOSAL_GENERATOR.FREEZE": "proposal_generator",
    "MODEL.ROI_HEADS.FREEZE_FEAT": "roi_heads.box_head",
}


def freeze_module(module: nn.Module) -> nn.Module:
    """Stop ``module``'s gradients and fix its BatchNorm statistics (in place where possible;
    returns the module, a new one if ``module`` itself is a BatchNorm layer)."""
    for parameter in module.parameters():
        parameter.requires_grad = False
    return FrozenBatchNorm2d.convert_frozen_batchnorm(module)


def freeze_from_config(model: nn.Module, cfg) -> nn.Module:
    """Freeze the parts of ``model`` the config's freeze keys name; return ``model``."""
    for key, path in FREEZE_KEYS.items():
        if not config_value(cfg, key):
            continue
        *parents, name = path.split(".")
        owner = model
        for part in parents:
            owner = getattr(owner, part)
        if not hasattr(owner, name):
            raise ValueError(f"{key}=True, but the model ({type(model).__name__}) has no "
                             f"{path} to freeze")
        setattr(owner, name, freeze_module(getattr(owner, name)))
    return model
