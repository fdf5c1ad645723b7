import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from dynnet_d2 import get_dynnet_cfg


def _cfg(width, depth=18):
    cfg = get_dynnet_cfg()
    cfg.merge_from_list([
        "MODEL.BACKBONE.NAME", "build_basic_resnet_fpn_backbone", "MODEL.RESNETS.DEPTH", depth,
        "MODEL.RESNETS.STEM_OUT_CHANNELS", width, "MODEL.RESNETS.RES2_OUT_CHANNELS", width,
        "MODEL.RESNETS.NORM", "BN", "MODEL.FPN.OUT_CHANNELS", 32,
        "MODEL.RESNETS.OUT_FEATURES", ["res2", "res3", "res4", "res5"],
        "MODEL.FPN.IN_FEATURES", ["res2", "res3", "res4", "res5"],
    ])
    return cfg


def test_narrow_resnet_fpn_shapes_and_gradients():
    backbone = build_backbone(_cfg(16), ShapeSpec(channels=3))
    x = torch.randn(2, 3, 64, 96, requires_grad=True)
    out = backbone(x)
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    assert out["p2"].shape == (2, 32, 16, 24) and out["p6"].shape == (2, 32, 1, 2)
    sum(o.sum() for o in out.values()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    res5 = backbone.bottom_up.res5[-1].conv2
    assert res5.out_channels == 16 * 8


def test_width_scales_parameters_quadratically():
    def params(width):
        return sum(p.numel() for p in
                   build_backbone(_cfg(width), ShapeSpec(channels=3)).bottom_up.parameters())
    assert 3.5 < params(64) / params(32) < 4.1


def test_unsupported_depth_is_named():
    with pytest.raises(ValueError, match="MODEL.RESNETS.DEPTH=50"):
        build_backbone(_cfg(32, depth=50), ShapeSpec(channels=3))
