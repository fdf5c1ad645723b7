"""Shipped configs follow the layout rules of CONTRIBUTING.md, build their model and find weights.

* ``Base-*.yaml`` are abstract: no ``OUTPUT_DIR``, no ``MODEL.DEVICE``;
* every other config is a runnable leaf ``<model>_<backbone>_<schedule>_<dataset>.yaml`` that
  writes to ``output/<its path under configs/ without .yaml>`` (or a folder in it named by the
  few-shot overrides, e.g. ``.../split{split}_{shot}shot_seed{seed}``);
* no config pins the device: ``MODEL.DEVICE`` follows the machine.
"""
import re
from pathlib import Path

import pytest
import torch
import yaml
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from dynnet_d2.config import default_device, load_config
from dynnet_d2.methods.idk.build import check_cascade_config
from dynnet_d2.modeling.meta_arch import is_classifier

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
CONFIGS = sorted(CONFIG_ROOT.rglob("*.yaml"))
LEAVES = [p for p in CONFIGS if not p.name.startswith("Base-")]
# <model>_<backbone>_<schedule>_<dataset>: the schedule is iterations ("2800it"), iterations per
# shot of a K-shot fine-tuning ("100itxK"), epochs ("12ep") or Detectron2's multiples ("1x");
# model and backbone may contain underscores.
LEAF_NAME = re.compile(r"^[a-z][a-z0-9_]*_[A-Za-z0-9-]+(_[A-Za-z0-9-]+)*"
                       r"_(\d+it|\d+itxK|\d+ep|\d+x)_[a-z0-9]+$")
# Every config loads with these (K-shot fine-tuning configs need a shot).
FEWSHOT_OPTS = ["FEWSHOT.SHOT", 1]


def _raw(path):
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_no_config_pins_the_device(path):
    assert "DEVICE" not in _raw(path).get("MODEL", {}), f"{path.name} sets MODEL.DEVICE"
    assert load_config(str(path), FEWSHOT_OPTS).MODEL.DEVICE == default_device()


@pytest.mark.parametrize("path", [p for p in CONFIGS if p not in LEAVES], ids=lambda p: p.name)
def test_base_configs_are_abstract(path):
    assert "OUTPUT_DIR" not in _raw(path), f"{path.name} is a Base config and sets OUTPUT_DIR"


@pytest.mark.parametrize("path", LEAVES, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_leaf_configs_are_named_and_write_to_their_own_folder(path):
    assert LEAF_NAME.match(path.stem), (f"{path.name}: expected "
                                        f"<model>_<backbone>_<schedule>_<dataset>.yaml")
    expected = "output/" + str(path.relative_to(CONFIG_ROOT).with_suffix(""))
    output_dir = _raw(path).get("OUTPUT_DIR", "")
    assert output_dir == expected or output_dir.startswith(expected + "/"), output_dir


@pytest.mark.parametrize("path", LEAVES, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_leaf_config_builds_and_loads_weights(path):
    cfg = load_config(str(path), FEWSHOT_OPTS)
    if cfg.CASCADE.STAGES:  # an IDK cascade: its stages are trained configs of their own
        check_cascade_config(cfg)
        for stage in cfg.CASCADE.STAGES:
            assert is_classifier(load_config(stage)), stage
        return
    model = build_model(cfg)
    if is_classifier(cfg):
        assert model.head.out_features == cfg.MODEL.CLASSIFIER.NUM_CLASSES
    elif hasattr(model, "sem_seg_head"):  # a semantic segmentor
        assert model.sem_seg_head.predictor.out_channels == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    elif not hasattr(model, "roi_heads"):  # FSRW's one-stage detector
        assert len(model.class_vectors.vectors) == cfg.MODEL.FSRW.NUM_CLASSES
    else:
        assert model.roi_heads.box_predictor.num_classes == cfg.MODEL.ROI_HEADS.NUM_CLASSES
        assert hasattr(model.roi_heads, "mask_head") == cfg.MODEL.MASK_ON
    if cfg.MODEL.WEIGHTS.startswith("output/"):
        return  # weights an earlier stage of a pipeline writes (e.g. TFA's surgery output)
    if cfg.MODEL.WEIGHTS:
        body = getattr(model.backbone, "bottom_up", model.backbone)  # under an FPN, or alone
        before = {k: v.clone() for k, v in body.state_dict().items()}
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        after = body.state_dict()
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        assert len(changed) >= 0.9 * len(before), ("the checkpoint left most backbone tensors "
                                                   "as initialised")


def test_leaf_names_are_checked():
    for good in ("faster_rcnn_R18half_FPN_2800it_shapes", "mask_rcnn_MobileNetV2_FPN_1x_coco",
                 "faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes"):
        assert LEAF_NAME.match(good)
    for bad in ("Base-RCNN-Tiny", "faster_rcnn_shapes", "faster_rcnn_R18_FPN_long_shapes"):
        assert not LEAF_NAME.match(bad)
