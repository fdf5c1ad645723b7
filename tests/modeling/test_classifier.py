"""ImageClassifier: the forward pass against a hand computation, its errors, and training +
evaluation through DynnetTrainer (results.json's classification block)."""
import json
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from torch.nn import functional as F

import dynnet_d2  # noqa: F401  (registers every component)
from dynnet_d2.config import get_dynnet_cfg, load_config
from dynnet_d2.engine import DynnetCheckpointer, DynnetTrainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SKIPNET_TINY = str(CONFIGS / "SkipNet" / "skipnet_R8cifar_sp_200it_digits.yaml")


def tiny_cfg():
    cfg = get_dynnet_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "ImageClassifier"
    cfg.MODEL.BACKBONE.NAME = "build_cifar_resnet_backbone"
    cfg.MODEL.CIFAR_RESNET.DEPTH, cfg.MODEL.CIFAR_RESNET.WIDTH = 8, 4
    cfg.MODEL.CIFAR_RESNET.OUT_FEATURES = ["res3", "res4"]
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [10.0, 20.0], [2.0, 4.0]
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = 3
    return cfg


def test_logits_losses_and_scores_match_a_hand_computation():
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    images = torch.randint(0, 255, (2, 2, 8, 8), dtype=torch.uint8)
    batch = [{"image": images[0], "label": 2}, {"image": images[1], "label": 0}]
    mean = torch.tensor([10.0, 20.0]).view(1, 2, 1, 1)
    std = torch.tensor([2.0, 4.0]).view(1, 2, 1, 1)
    model.eval()
    features = model.backbone((images.float() - mean) / std)["res4"]  # the last output feature
    logits = features.mean(dim=(2, 3)) @ model.head.weight.T + model.head.bias
    with torch.no_grad():
        outputs = model(batch)
    torch.testing.assert_close(torch.stack([o["scores"] for o in outputs]),
                               F.softmax(logits, dim=1).detach())
    model.train()
    with EventStorage():
        losses = model(batch)
    # The same training-mode BatchNorm (batch statistics) by hand.
    features = model.backbone((images.float() - mean) / std)["res4"]
    logits = features.mean(dim=(2, 3)) @ model.head.weight.T + model.head.bias
    expected = (-F.log_softmax(logits, 1)[0, 2] - F.log_softmax(logits, 1)[1, 0]) / 2
    torch.testing.assert_close(losses["loss_cls"], expected)


def test_in_feature_picks_the_pooled_output():
    cfg = tiny_cfg()
    cfg.MODEL.CLASSIFIER.IN_FEATURE = "res3"
    assert build_model(cfg).head.in_features == 8
    cfg.MODEL.CLASSIFIER.IN_FEATURE = "p5"
    with pytest.raises(ValueError, match="IN_FEATURE='p5'.*expected one of \\['res3', 'res4'\\]"):
        build_model(cfg)


def test_bad_batches_are_named():
    model = build_model(tiny_cfg()).eval()
    with pytest.raises(ValueError, match="one size per batch"):
        model([{"image": torch.zeros(2, 8, 8)}, {"image": torch.zeros(2, 9, 8)}])
    with pytest.raises(ValueError, match="3 channels but MODEL.PIXEL_MEAN has 2"):
        model([{"image": torch.zeros(3, 8, 8)}])


def test_digits_trains_and_writes_classification_results(tmp_path):
    cfg = load_config(str(CONFIGS / "Classification/classifier_R8cifar_200it_digits.yaml"),
                      ["OUTPUT_DIR", str(tmp_path), "SOLVER.MAX_ITER", 120, "SEED", 0,
                       "MODEL.DEVICE", "cpu"])
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    results = json.loads((tmp_path / "inference" / "results.json").read_text())
    metrics = results["classification"]
    assert metrics["num_images"] == 300
    assert metrics["top1"] > 60, metrics  # 10 classes: chance is 10 %
    assert set(metrics["per_class_acc"]) == {str(d) for d in range(10)}
    assert metrics["mean_gflops_executed"] > 0 and metrics["images_per_s"] > 0
    assert not any(k.startswith("acc-") for k in metrics)


def test_a_dynamic_backbone_is_saved_once_and_older_checkpoints_load_strictly(tmp_path):
    model = build_model(load_config(SKIPNET_TINY))
    keys = list(model.state_dict())
    assert not [k for k in keys if k.startswith("dynamic.")] and model.dynamic is model.backbone
    state = model.state_dict()
    # a checkpoint of the version that also saved the backbone as "dynamic."
    aliased = {**state, **{"dynamic." + k[len("backbone."):]: v for k, v in state.items()
                           if k.startswith("backbone.")}}
    for name, saved in (("plain", state), ("aliased", aliased)):
        torch.save({"model": saved}, tmp_path / f"{name}.pth")
        other = build_model(load_config(SKIPNET_TINY))
        DynnetCheckpointer(other, strict=True).load(str(tmp_path / f"{name}.pth"))
        for key, value in other.state_dict().items():
            torch.testing.assert_close(value, state[key])
