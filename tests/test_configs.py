"""Every shipped config merges into dynnet_d2's defaults, builds its model and finds its weights."""
from pathlib import Path

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from dynnet_d2 import get_dynnet_cfg

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds_and_loads_weights(path):
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(str(path))
    model = build_model(cfg)
    assert model.roi_heads.box_predictor.cls_score.out_features == cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1
    assert hasattr(model.roi_heads, "mask_head") == cfg.MODEL.MASK_ON
    if cfg.MODEL.WEIGHTS:
        before = {k: v.clone() for k, v in model.backbone.bottom_up.state_dict().items()}
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        after = model.backbone.bottom_up.state_dict()
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert len(changed) >= 0.9 * len(before), "the checkpoint left most backbone tensors as initialised"


def test_configs_are_found():
    assert {p.name for p in CONFIGS} >= {"Base-RCNN-Tiny.yaml", "Base-RCNN-MobileNetV2-Tiny.yaml"}
