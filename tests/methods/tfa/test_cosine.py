"""TFA's model pieces: the cosine classifier (Eq. 7.2) against a hand computation, fsdet-compatible
parameters, freezing by fsdet's keys, and the OUTPUT_LAYER / ROI heads check."""
import math

import pytest
import torch
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.utils.events import EventStorage
from torch import nn

from dynnet_d2.config import get_dynnet_cfg, load_config
from dynnet_d2.engine import DynnetTrainer
from dynnet_d2.methods.tfa import CosineSimOutputLayers

CONFIG = "configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"
FROM_SCRATCH = "configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml"
TINY = ["FEWSHOT.SHOT", 1, "SOLVER.IMS_PER_BATCH", 2, "DATALOADER.NUM_WORKERS", 0,
        "INPUT.MIN_SIZE_TRAIN", (96,), "INPUT.MIN_SIZE_TEST", 96, "DATASETS.CHECK_IMAGES", False]


def _predictor(scale, num_classes=2, dim=3):
    cfg = get_dynnet_cfg()
    cfg.merge_from_list(["MODEL.ROI_HEADS.NUM_CLASSES", num_classes,
                         "MODEL.ROI_HEADS.COSINE_SCALE", scale])
    return CosineSimOutputLayers(cfg, ShapeSpec(channels=dim))


def test_cosine_scores_and_gradient_match_a_hand_computation():
    predictor = _predictor(20.0)
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])  # 2 classes + background
    with torch.no_grad():
        predictor.cls_score.weight.copy_(w)
    x = torch.tensor([[3.0, 4.0, 0.0]], requires_grad=True)
    scores, deltas = predictor(x)
    # cos(x, w_j) = <x, w_j> / (|x| |w_j|) with |x| = 5: 3/5, 8/10, 7/(5 sqrt 3)
    expected = 20.0 * torch.tensor([[0.6, 0.8, 7.0 / (5.0 * math.sqrt(3.0))]])
    torch.testing.assert_close(scores, expected)
    assert deltas.shape == (1, 8)  # class-specific boxes: 4 x 2 classes
    # d s_1 / d x = alpha (w_1 / (|x||w_1|) - <x, w_1> x / (|x|^3 |w_1|)), w_1 = (0, 2, 0)
    scores[0, 1].backward()
    xv, w1 = x.detach()[0], w[1]
    hand = 20.0 * (w1 / (5.0 * 2.0) - (xv @ w1) * xv / (125.0 * 2.0))
    torch.testing.assert_close(x.grad[0], hand)
    assert predictor.cls_score.bias is None


def test_learnable_scale_is_a_parameter_named_as_fsdet():
    predictor = _predictor(-1.0)
    assert isinstance(predictor.scale, nn.Parameter) and predictor.scale.shape == (1,)
    assert predictor.scale.item() == 20.0
    predictor(torch.randn(4, 3))[0].sum().backward()
    assert predictor.scale.grad is not None and predictor.scale.grad.abs() > 0
    assert set(predictor.state_dict()) == {"cls_score.weight", "bbox_pred.weight", "bbox_pred.bias",
                                           "scale"}


def test_bad_cosine_scale_is_named():
    with pytest.raises(ValueError, match="COSINE_SCALE=0.0"):
        _predictor(0.0)


def test_fsdet_checkpoint_layout_loads_without_missing_keys():
    model = DynnetTrainer.build_model(load_config(CONFIG, TINY))
    ours = model.state_dict()
    fsdet = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in ours.items()}
    assert "roi_heads.box_predictor.cls_score.bias" not in fsdet  # fsdet's cosine head: no bias
    result = model.load_state_dict(fsdet, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(model.roi_heads.box_predictor.cls_score.weight,
                               fsdet["roi_heads.box_predictor.cls_score.weight"])


def test_only_the_box_predictor_trains_when_everything_else_is_frozen():
    cfg = load_config(CONFIG, TINY)
    model = DynnetTrainer.build_model(cfg)
    batch = next(iter(DynnetTrainer.build_train_loader(cfg)))
    model.train()
    with EventStorage():
        sum(model(batch).values()).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {"roi_heads.box_predictor.cls_score.weight",
                         "roi_heads.box_predictor.bbox_pred.weight",
                         "roi_heads.box_predictor.bbox_pred.bias"}
    assert all(not p.requires_grad for n, p in model.named_parameters() if n not in with_grad)


def test_freezing_fixes_batchnorm_statistics():
    """The from-scratch ResNet trains BatchNorm; frozen, its statistics must not move either."""
    opts = ["MODEL.BACKBONE.FREEZE", True, "MODEL.ROI_HEADS.FREEZE_FEAT", True]
    model = DynnetTrainer.build_model(load_config(FROM_SCRATCH, TINY + opts))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.train()
    model.backbone(torch.randn(2, 3, 64, 64, device=model.device))
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
    assert any(p.requires_grad for p in model.proposal_generator.parameters())  # not frozen


def test_output_layer_ignored_by_detectron2_heads_is_an_error():
    cfg = load_config(CONFIG, TINY + ["MODEL.ROI_HEADS.NAME", "StandardROIHeads"])
    with pytest.raises(ValueError, match="OUTPUT_LAYER='CosineSimOutputLayers' is ignored by "
                                         "MODEL.ROI_HEADS.NAME='StandardROIHeads'.*TFAROIHeads"):
        DynnetTrainer.build_model(cfg)
