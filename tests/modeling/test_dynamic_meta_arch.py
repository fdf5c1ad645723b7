"""Detectron2's detector and semantic segmentor with a dynamic backbone
(dynnet_d2/modeling/dynamic_meta_arch.py): a plain backbone trains and predicts as under
Detectron2's meta-architecture, the backbone's FLOPs per image against fvcore, DeepMoE's losses
against a hand computation with image-level class presence, and the semantic-segmentation class
check."""
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from fvcore.nn import FlopCountAnalysis
from torch.nn import functional as F

import dynnet_d2  # noqa: F401  (registers every component)
from dynnet_d2.config import load_config
from dynnet_d2.data.errors import DatasetFormatError
from dynnet_d2.engine.trainer import DynnetTrainer, training_data
from dynnet_d2.evaluation.flops import ExecutedFlopsEvaluator
from dynnet_d2.modeling.dynamic_meta_arch import (
    DynamicGeneralizedRCNN,
    DynamicSemanticSegmentor,
    presence,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DETECTOR = CONFIGS / "faster_rcnn_R18half_FPN_2800it_shapes.yaml"
DEEPMOE_SEGMENTOR = CONFIGS / "DeepMoE/semantic_deepmoe_R18half_FPN_2800it_shapessem.yaml"


def _fvcore_total(module, x):
    analysis = FlopCountAnalysis(module, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis


def _detection_inputs():
    torch.manual_seed(0)
    inputs = []
    for classes in ([3], [0, 3, 7]):
        instances = Instances((96, 128))
        instances.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 60.0, 50.0]] * len(classes)))
        instances.gt_classes = torch.tensor(classes)
        inputs.append({"image": torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8),
                       "height": 96, "width": 128, "instances": instances})
    return inputs


def test_presence_by_hand():
    labels = [torch.tensor([[0, 2], [2, 255]]), torch.tensor([1, 1, 4]),
              torch.tensor([], dtype=torch.long)]
    # 255 (ignore) and 4 (>= num_classes) are left out; an image without labels has no class
    assert presence(labels, 4, "cpu").tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]


def test_a_plain_backbone_trains_and_predicts_as_under_detectron2():
    upstream_cfg = load_config(str(DETECTOR), ["MODEL.DEVICE", "cpu"])
    cfg = load_config(str(DETECTOR), ["MODEL.DEVICE", "cpu",
                                      "MODEL.META_ARCHITECTURE", "DynamicGeneralizedRCNN"])
    torch.manual_seed(0)
    upstream = build_model(upstream_cfg)
    model = build_model(cfg)
    assert isinstance(model, DynamicGeneralizedRCNN) and model.dynamic is None
    model.load_state_dict(upstream.state_dict())
    inputs = _detection_inputs()
    losses = []
    for m in (upstream, model):
        torch.manual_seed(1)  # the same RPN / ROI sampling
        with EventStorage():
            losses.append({k: v.item() for k, v in m.train()(inputs).items()})
    assert losses[0] == losses[1]
    test_inputs = [{k: d[k] for k in ("image", "height", "width")} for d in inputs]
    with torch.no_grad():
        expected = upstream.eval()(test_inputs)
        outputs = model.eval()(test_inputs)
        padded = model.preprocess_image(test_inputs).tensor
    for e, o in zip(expected, outputs):
        assert torch.equal(e["instances"].pred_boxes.tensor, o["instances"].pred_boxes.tensor)
    # 96 x 128 padded to 96 x 128 (divisible by 32): fvcore's count of the backbone, per image
    static = _fvcore_total(model.backbone, padded[:1]).total()
    assert [o["backbone_gflops"] for o in outputs] == pytest.approx([static / 1e9] * 2)


def test_deepmoe_segmentor_losses_use_class_presence_and_flops_follow_the_gates():
    cfg = load_config(str(DEEPMOE_SEGMENTOR), ["MODEL.DEVICE", "cpu", "MODEL.DEEPMOE.LAMBDA",
                                               0.5, "MODEL.DEEPMOE.MU", 2.0])
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model, DynamicSemanticSegmentor)
    backbone = model.backbone
    labels = [torch.zeros((64, 96), dtype=torch.long), torch.full((64, 96), 255)]
    labels[0][:10, :10], labels[1][20:30, :] = 5, 20
    inputs = [{"image": torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8), "sem_seg": s}
              for s in labels]
    with EventStorage():
        losses = model.train()(inputs)
    # image 0 holds background and class 5; image 1 class 20 (255 is ignored)
    targets = torch.zeros((2, 21))
    targets[0, [0, 5]], targets[1, 20] = 1.0, 1.0
    expected = 2.0 * F.binary_cross_entropy_with_logits(
        backbone.embedding_classifier(backbone.embedding_out), targets)
    assert losses["loss_embedding"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses["loss_gate_l1"].item() == pytest.approx(
        0.5 * sum(g.sum(1) for g in backbone.gates).mean().item(), rel=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in backbone.gating.parameters())

    model.eval()
    with torch.no_grad():
        for head in backbone.gating.heads:
            head.weight.fill_(1.0)
        everything = model([{"image": inputs[0]["image"]}])[0]["backbone_gflops"] * 1e9
        backbone.gating.heads[0].weight.fill_(-1.0)  # the first block's gated channels all closed
        closed = model([{"image": inputs[0]["image"]}])[0]["backbone_gflops"] * 1e9
        # 64 x 96 is divisible by 32: the backbone's input is the normalized image, unpadded
        padded = ((inputs[0]["image"].float() - model.pixel_mean) / model.pixel_std)[None]
        with backbone.static_mode():
            by_module = _fvcore_total(backbone, padded).by_module()
    # the embedding and gating networks are counted: more than the base alone
    assert everything == pytest.approx(by_module[""])
    assert everything > by_module["base"]
    # closing the first block's 16 gated channels saves its conv1 (and BN) and conv2's inputs
    block = "base.bottom_up.res2.0.block"
    saved = by_module[f"{block}.conv1"] + by_module[f"{block}.conv2"] \
        - by_module[f"{block}.conv2.norm"]
    assert everything - closed == pytest.approx(saved)
    assert model.sem_seg_head(model.backbone(padded))[0].shape[1] == 21


def test_a_segmentor_checks_its_classes_against_the_stuff_classes(tmp_path):
    cfg = load_config(str(CONFIGS / "semantic_R18half_FPN_2800it_shapessem.yaml"),
                      ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", 20, "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(ValueError, match=r"shapes_sem_train.*21 classes.*"
                                         r"MODEL.SEM_SEG_HEAD.NUM_CLASSES=20"):
        training_data(cfg)


def test_a_segmentor_refuses_training_data_without_label_maps(tmp_path):
    cfg = load_config(str(CONFIGS / "semantic_R18half_FPN_2800it_shapessem.yaml"),
                      ["DATASETS.TRAIN", "('shapes_train',)", "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
                       20, "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(DatasetFormatError, match=r"shapes_train.*no \['sem_seg_file_name'\].*"
                                                 r"SemanticSegmentor trains on"):
        training_data(cfg)


def test_the_trainer_adds_the_flops_evaluator_only_where_reported():
    cfg = load_config(str(DEEPMOE_SEGMENTOR))
    evaluators = DynnetTrainer.build_evaluator(cfg, "shapes_sem_val", "/tmp/unused")
    assert any(isinstance(e, ExecutedFlopsEvaluator) for e in evaluators._evaluators)
    plain = load_config(str(CONFIGS / "semantic_R18half_FPN_2800it_shapessem.yaml"))
    assert not isinstance(DynnetTrainer.build_evaluator(plain, "shapes_sem_val", "/tmp/unused"),
                          ExecutedFlopsEvaluator)
