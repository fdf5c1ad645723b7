"""The dynamic-compute protocol, the meta-architecture declarations and the classifier-head
registry that ImageClassifier and the trainer read: executed FLOPs of a fractionally executed
part against a hand count, the protocol's losses, metrics and DDP flag, the declarations' checks
before training, and the head registry."""
import contextlib

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone, build_model
from detectron2.utils.events import EventStorage
from torch import nn

import dynnet_d2  # noqa: F401  (registers every component)
from dynnet_d2.config import get_dynnet_cfg, load_config
from dynnet_d2.engine import DynnetTrainer
from dynnet_d2.modeling.classifier import ImageClassifier
from dynnet_d2.modeling.dynamic import DynamicCompute, leaves_parameters_unused
from dynnet_d2.modeling.meta_arch import is_classifier, meta_architecture_needs

DIGITS = "configs/Classification/classifier_R8cifar_200it_digits.yaml"


class HalfGated(Backbone, DynamicCompute):
    """stem (1 -> 4 channels, 3x3) then ``part`` (4 -> 4, 3x3) run on a given fraction of
    its work per input (the executed fraction, as channel gating would report it)."""

    metric_prefix = "toy"

    def __init__(self, fractions):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.part = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.fractions, self.full = torch.tensor(fractions), False

    def forward(self, x):
        x = self.stem(x)
        f = torch.ones(x.shape[0]) if self.full else self.fractions[:x.shape[0]]
        self.executed_fraction = f[:, None]
        return {"out": self.part(x) * f.view(-1, 1, 1, 1)}

    def output_shape(self):
        return {"out": ShapeSpec(channels=4, stride=1)}

    def costed_modules(self):
        return {"part": ()}

    def losses(self, per_image_loss, targets=None):
        self.targets = targets
        return {"loss_toy": per_image_loss.sum() * 0 + 1.5}

    def leaves_parameters_unused(self):
        return True

    @contextlib.contextmanager
    def static_mode(self):
        self.full = True
        try:
            yield
        finally:
            self.full = False


def toy_classifier(fractions):
    return ImageClassifier(backbone=HalfGated(fractions), head=nn.Linear(4, 3), num_classes=3,
                           in_feature="out", pixel_mean=[0.0], pixel_std=[1.0])


def test_executed_flops_of_a_fractionally_executed_part_match_a_hand_count():
    model = toy_classifier([0.25, 1.0]).eval()
    h = w = 5
    with torch.no_grad():
        out = model([{"image": torch.rand(1, h, w)}, {"image": torch.rand(1, h, w)}])
    stem, part, head = 1 * 4 * 9 * h * w, 4 * 4 * 9 * h * w, 4 * 3  # multiply-adds
    assert out[0]["gflops"] * 1e9 == pytest.approx(stem + 0.25 * part + head)
    assert out[1]["gflops"] * 1e9 == pytest.approx(stem + part + head)


def test_the_classifier_adds_the_protocols_losses_and_logs_its_metric():
    model = toy_classifier([0.5, 0.5]).train()
    batch = [{"image": torch.rand(1, 4, 4), "label": 1}, {"image": torch.rand(1, 4, 4),
                                                          "label": 2}]
    with EventStorage() as storage:
        losses = model(batch)
        assert storage.latest()["toy/executed_fraction"][0] == pytest.approx(0.5)
    assert set(losses) == {"loss_cls", "loss_toy"} and float(losses["loss_toy"]) == 1.5
    assert model.backbone.targets.tolist() == [1, 2]  # the images' labels reach the backbone
    assert leaves_parameters_unused(model)
    assert not leaves_parameters_unused(nn.Sequential(nn.Linear(2, 2)))


def test_a_plain_backbone_counts_its_static_flops():
    model = build_model(load_config(DIGITS, ["MODEL.DEVICE", "cpu"])).eval()
    assert model.dynamic is None
    with torch.no_grad():
        a, b = model([{"image": torch.rand(1, 8, 8) * 255}, {"image": torch.rand(1, 8, 8)}])
    assert a["gflops"] == b["gflops"] > 0


def test_meta_architecture_declarations():
    cfg = load_config(DIGITS, ["MODEL.DEVICE", "cpu"])
    needs = meta_architecture_needs(cfg)
    assert needs.class_count_key == "MODEL.CLASSIFIER.NUM_CLASSES" and is_classifier(cfg)
    assert needs.evaluator_types == ("classification",) and not needs.draws_predictions
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    detector = meta_architecture_needs(cfg)
    assert detector.class_count_key == "MODEL.ROI_HEADS.NUM_CLASSES" and not is_classifier(cfg)
    cfg.FEWSHOT.SHOT = 5  # a K-shot fine-tuning starts from a checkpoint after surgery
    assert detector.predictor_must_fit(cfg) and not needs.predictor_must_fit(cfg)
    cfg.MODEL.META_ARCHITECTURE = "SomethingNew"
    with pytest.raises(KeyError, match="declare_meta_architecture"):
        meta_architecture_needs(cfg)


def test_a_test_set_of_another_kind_is_an_error_before_training(tmp_path):
    cfg = load_config(DIGITS, ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path),
                               "DATASETS.TEST", ("shapes_test",)])
    with pytest.raises(ValueError, match=r"'shapes_test' is evaluated by a 'coco' evaluator, "
                                         r"but MODEL.META_ARCHITECTURE='ImageClassifier'"):
        DynnetTrainer(cfg)


def test_classifier_heads_come_from_their_registry():
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(DIGITS)
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    assert type(model.head).__name__ == "LinearHead"
    assert {"head.weight", "head.bias"} <= set(model.state_dict())  # old checkpoints load
    assert model.head.out_features == cfg.MODEL.CLASSIFIER.NUM_CLASSES
    cfg.MODEL.CLASSIFIER.HEAD = "NoSuchHead"
    with pytest.raises(KeyError, match="NoSuchHead"):
        build_model(cfg)
