"""SOLVER.OPTIMIZER and modules' learning-rate factors (dynnet_d2/engine/trainer.py
build_optimizer): the optimizer named, Detectron2's parameter groups, a factor on exactly the
parameters under its prefix, an unknown name refused."""
import pytest
import torch
from detectron2.solver import build_optimizer as detectron2_build_optimizer
from torch import nn

from dynnet_d2.config import get_dynnet_cfg
from dynnet_d2.engine.trainer import build_optimizer, module_lr_factors


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.slow = nn.Linear(3, 3)
        self.fast = nn.Linear(3, 2)
        self.lr_factors = {"slow.": 0.1}


def model():
    return nn.Sequential(nn.Linear(4, 3), Scaled())


def lrs(optimizer):
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


def test_sgd_without_factors_is_detectron2s_optimizer():
    cfg = get_dynnet_cfg()
    net = model()
    del net[1].lr_factors
    ours, theirs = build_optimizer(cfg, net), detectron2_build_optimizer(cfg, net)
    assert type(ours) is type(theirs) is torch.optim.SGD
    assert [{k: v for k, v in g.items() if k != "params"} for g in ours.param_groups] == \
        [{k: v for k, v in g.items() if k != "params"} for g in theirs.param_groups]


def test_adam_and_a_factor_on_the_prefixed_parameters_only():
    cfg = get_dynnet_cfg()
    cfg.SOLVER.OPTIMIZER, cfg.SOLVER.BASE_LR, cfg.SOLVER.BIAS_LR_FACTOR = "ADAM", 0.2, 1.0
    net = model()
    assert module_lr_factors(net) == {"1.slow.": 0.1}
    optimizer = build_optimizer(cfg, net)
    assert isinstance(optimizer, torch.optim.Adam)
    by_param = lrs(optimizer)
    for name, parameter in net.named_parameters():
        expected = 0.2 * 0.1 if name.startswith("1.slow.") else 0.2
        assert by_param[id(parameter)] == pytest.approx(expected), name


def test_an_unknown_optimizer_is_named():
    cfg = get_dynnet_cfg()
    cfg.SOLVER.OPTIMIZER = "adagrad"
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER='adagrad': expected one of"):
        build_optimizer(cfg, model())
