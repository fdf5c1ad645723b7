"""The separable CPU backward of ROIAlign (dynnet_d2/modeling/roi_align.py) against torchvision's
backward, the choice between them, and the poolers of a built model."""
from pathlib import Path

import pytest
import torch
from detectron2.layers import ROIAlign
from detectron2.modeling import build_model
from detectron2.modeling.poolers import ROIPooler
from torchvision.ops import roi_align

from dynnet_d2.config import load_config
from dynnet_d2.engine.trainer import DynnetTrainer
from dynnet_d2.modeling.roi_align import (
    SeparableBackwardROIAlign,
    axis_weights,
    separable_backward_is_cheaper,
    time_backwards,
    use_roi_align_cpu_backward,
)

REPO = Path(__file__).resolve().parents[2]
TORCHVISION_BACKWARD = "GeneratedBackwardFor_torchvision_roi_align_defaultBackward"


def random_rois(count, images, height, width, scale, generator):
    """Boxes (image index, x1, y1, x2, y2) in input pixels: most inside the map, some partly or
    wholly outside it, degenerate ones, unsorted image indices."""
    xy = torch.rand(count, 2, generator=generator, dtype=torch.float64) * torch.tensor(
        [width / scale, height / scale], dtype=torch.float64)
    wh = torch.rand(count, 2, generator=generator, dtype=torch.float64) * (12 / scale)
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes[0] = torch.tensor([-30.0, -20.0, 5.0, 6.0])  # starts outside, top-left
    boxes[1] = torch.tensor([width / scale - 4, height / scale - 3, width / scale + 40,
                             height / scale + 50])  # ends outside, bottom-right
    boxes[2] = torch.tensor([3.0, 4.0, 3.0, 4.0])  # empty
    boxes[3] = torch.tensor([-90.0, -90.0, -60.0, -70.0])  # wholly outside
    index = torch.randint(0, images, (count, 1), generator=generator).to(torch.float64)
    return torch.cat([index, boxes], dim=1)


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "legacy"])
@pytest.mark.parametrize("output_size,sampling_ratio", [((7, 7), 2), ((14, 14), 2), ((5, 3), 3),
                                                        ((4, 4), 1)])
def test_gradient_equals_torchvisions(aligned, output_size, sampling_ratio):
    generator = torch.Generator().manual_seed(0)
    images, channels, height, width, scale = 3, 5, 9, 11, 0.25
    features = torch.randn(images, channels, height, width, dtype=torch.float64,
                           generator=generator, requires_grad=True)
    rois = random_rois(20, images, height, width, scale, generator)
    layer = SeparableBackwardROIAlign(output_size, scale, sampling_ratio, aligned)
    ours = layer(features, rois)
    reference = roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
    assert ours.grad_fn.name().endswith("_SeparableBackwardBackward")
    assert torch.equal(ours, reference)
    grad = torch.randn(reference.shape, dtype=torch.float64, generator=generator)
    (expected,) = torch.autograd.grad(reference, features, grad)
    (got,) = torch.autograd.grad(ours, features, grad)
    assert got.shape == features.shape
    assert torch.allclose(got, expected, atol=1e-12, rtol=1e-10)


def test_axis_weights_of_a_hand_made_roi():
    # one RoI from 0.5 to 2.5 on a 4-cell axis, one bin, 2 samples: at 1.0 and 2.0 (each / 2)
    weights = axis_weights(torch.tensor([0.5]), torch.tensor([2.0]), 1, 2, 4)
    assert torch.allclose(weights, torch.tensor([[[0.0, 0.5, 0.5, 0.0]]]))
    # 4 bins of 2.5 cells from -2, one sample each: -0.75 (clamped to cell 0), 1.75 (cells 1 and
    # 2), 4.25 and 6.75 (beyond [-1, size]: nothing); 4 bins from 3.0 to 3.8: at or beyond the
    # last cell, which takes the whole weight
    weights = axis_weights(torch.tensor([-2.0, 3.0]), torch.tensor([10.0, 0.8]), 4, 1, 4)
    assert torch.allclose(weights[0], torch.tensor([[1.0, 0, 0, 0], [0, 0.25, 0.75, 0],
                                                    [0, 0, 0, 0], [0, 0, 0, 0]]))
    assert torch.allclose(weights[1], torch.tensor([[0, 0, 0, 1.0]] * 4))


def test_the_cheaper_backward_is_chosen_by_the_map_size():
    # this project's finest level (stride 4 on ~160 x 208 images) vs 800-pixel images
    assert separable_backward_is_cheaper(64, (14, 14), 2, 40, 52)
    assert not separable_backward_is_cheaper(256, (14, 14), 2, 200, 304)
    generator = torch.Generator().manual_seed(1)
    large = torch.randn(1, 2, 300, 300, requires_grad=True)
    rois = random_rois(4, 1, 300, 300, 1.0, generator).float()
    out = SeparableBackwardROIAlign((7, 7), 1.0, 2, True)(large, rois)
    assert out.grad_fn.name() == TORCHVISION_BACKWARD


def test_without_a_gradient_or_with_an_adaptive_ratio_it_is_detectron2s():
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(1, 3, 8, 8)
    rois = random_rois(5, 1, 8, 8, 0.5, generator).float()
    layer = SeparableBackwardROIAlign((4, 4), 0.5, 2, True)
    assert layer(features, rois).grad_fn is None
    features.requires_grad_(True)
    adaptive = SeparableBackwardROIAlign((4, 4), 0.5, 0, True)
    assert adaptive(features, rois).grad_fn.name() == TORCHVISION_BACKWARD
    assert torch.equal(adaptive(features, rois), ROIAlign((4, 4), 0.5, 0, True)(features, rois))


CONFIG = REPO / "configs/ShapeProp/mask_rcnn_agnostic_MobileNetV2_FPN_300it_shapesmasksbase1.yaml"


def pooler_layers(model):
    return [layer for module in model.modules() if isinstance(module, ROIPooler)
            for layer in module.level_poolers]


def test_every_pooler_of_a_built_model_gets_the_configured_backward():
    cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    plain = build_model(cfg)
    # box and mask poolers, 4 levels each
    assert use_roi_align_cpu_backward(plain, "separable") == 8
    assert all(type(layer) is SeparableBackwardROIAlign for layer in pooler_layers(plain))
    assert use_roi_align_cpu_backward(plain, "torchvision") == 8
    assert all(type(layer) is ROIAlign for layer in pooler_layers(plain))
    built = DynnetTrainer.build_model(cfg)  # the default: separable
    assert all(type(layer) is SeparableBackwardROIAlign for layer in pooler_layers(built))
    assert list(built.state_dict()) == list(plain.state_dict())
    cfg.MODEL.ROI_ALIGN_CPU_BACKWARD = "torchvision"
    assert all(type(layer) is ROIAlign for layer in pooler_layers(DynnetTrainer.build_model(cfg)))
    cfg.MODEL.ROI_ALIGN_CPU_BACKWARD = "scatter"
    with pytest.raises(ValueError, match="MODEL.ROI_ALIGN_CPU_BACKWARD='scatter'"):
        DynnetTrainer.build_model(cfg)


def test_the_benchmark_times_both_backwards_and_reports_the_pick():
    (row,) = time_backwards([(2, 6, 7, 3, 4)], rounds=1)
    assert {"torchvision_s", "separable_s", "speedup"} <= set(row)
    # 2 * 3 * 7 * (3 + 6) multiply-adds per 2 * 3 * 3 * 2^2 * 4 scatter-adds
    assert row["multiply_adds_per_scatter_add"] == pytest.approx(378 / 288, abs=0.05)
    assert row["picked"] == "separable"
