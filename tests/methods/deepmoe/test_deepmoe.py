"""DeepMoE (thesis ch. 3): Eq. 3.6 gates, the losses of Eq. 3.7-3.8, sliced execution equal to
the masked reference for every block kind and batch execution, the upstream block pinned,
executed FLOPs against fvcore and a hand count, the fine-tuning stage and the config errors."""
import copy

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_model
from detectron2.modeling.backbone.resnet import BasicBlock, BottleneckBlock
from detectron2.utils.events import EventStorage
from fvcore.nn import FlopCountAnalysis
from torch.nn import functional as F

import dynnet_d2  # noqa: F401  (registers every component)
from dynnet_d2.config import get_dynnet_cfg
from dynnet_d2.methods.deepmoe import (
    DeepMoEBackbone,
    MoEBlock,
    MultiHeadGating,
    ShallowEmbedding,
    gate_l1_loss,
)
from dynnet_d2.methods.deepmoe.gated import GateRun


def classifier_cfg(**deepmoe):
    cfg = get_dynnet_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "ImageClassifier"
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.0], [1.0]
    cfg.MODEL.BACKBONE.NAME = "build_deepmoe_backbone"
    cfg.MODEL.CIFAR_RESNET.DEPTH, cfg.MODEL.CIFAR_RESNET.WIDTH = 8, 8
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = 3
    for key, value in deepmoe.items():
        cfg.MODEL.DEEPMOE[key] = value
    return cfg


def resnet_cfg(variant, norm="BN"):
    """Detectron2's ResNet-50 (bottleneck blocks), tiny widths, as the base."""
    cfg = classifier_cfg(BASE_BACKBONE="build_resnet_backbone", BOTTLENECK_VARIANT=variant)
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.0] * 3, [1.0] * 3
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.NORM = 50, norm
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 8, 16
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    return cfg


def randomize(backbone: DeepMoEBackbone, closed=0.5):
    """Gate weights with about ``closed`` of the channels exactly 0 per image, and BatchNorm
    statistics that are not the identity (so slicing the normalization matters)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for head in backbone.gating.heads:
            head.weight.copy_(torch.randn_like(head.weight) - 0.3 * (closed - 0.5))
        for m in backbone.modules():
            if hasattr(m, "running_mean") and m.running_mean is not None:
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                if isinstance(m.weight, torch.nn.Parameter):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
    return backbone


def test_eq_3_6_gates_by_hand():
    gating = MultiHeadGating(2, [3])
    with torch.no_grad():
        gating.heads[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.5], [-1.0, 0.0]]))
    e = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    (g,) = gating(e)
    # ReLU(W e): [0.25 - 1.5, 0.5, -0.25] -> [0, 0.5, 0]; [1, 0.5, -1] -> [1, 0.5, 0]
    assert g.tolist() == [[0.0, 0.5, 0.0], [1.0, 0.5, 0.0]]
    assert (g == 0).sum() == 3  # exact zeros: channels not computed
    # the initial gates are near 1 (W ~ 1, e sums to 1): the network starts as the plain one
    fresh = MultiHeadGating(4, [5])(torch.softmax(torch.randn(2, 4), dim=1))[0]
    assert torch.allclose(fresh, torch.ones_like(fresh), atol=0.05)


def test_the_fused_gate_heads_equal_one_product_per_head_forward_and_backward():
    gating = MultiHeadGating(4, [3, 5, 2])
    with torch.no_grad():
        for head in gating.heads:
            head.weight.normal_()
    e = torch.softmax(torch.randn(3, 4), dim=1)
    fused = gating(e)
    per_head = [torch.relu(e @ head.weight.T) for head in gating.heads]
    assert [g.shape for g in fused] == [(3, 3), (3, 5), (3, 2)]
    for a, b in zip(fused, per_head):
        torch.testing.assert_close(a, b)
    weights = torch.randn(3, 10)
    expected = torch.autograd.grad(
        sum((g * w).sum() for g, w in zip(per_head, weights.split([3, 5, 2], dim=1))),
        [head.weight for head in gating.heads])
    found = torch.autograd.grad(
        sum((g * w).sum() for g, w in zip(gating(e), weights.split([3, 5, 2], dim=1))),
        [head.weight for head in gating.heads])
    for a, b in zip(found, expected):
        torch.testing.assert_close(a, b)


def test_embedding_is_a_softmax_over_experts_after_stride_2_convolutions():
    embedding = ShallowEmbedding(3, num_layers=4, channels=8, num_experts=5)
    x = torch.randn(2, 3, 32, 32)
    assert embedding.convs(x).shape == (2, 8, 2, 2)  # 32 / 2^4
    e = embedding(x)
    assert e.shape == (2, 5) and torch.allclose(e.sum(1), torch.ones(2))


def test_gate_l1_loss_by_hand():
    gates = [torch.tensor([[1.0, 0.0], [2.0, 3.0]]), torch.tensor([[0.5], [0.0]])]
    # image 1: 1 + 0.5 = 1.5; image 2: 5 + 0 = 5; mean 3.25
    assert gate_l1_loss(gates).item() == pytest.approx(3.25)


@pytest.mark.parametrize("cfg", [classifier_cfg(), resnet_cfg("A"), resnet_cfg("B"),
                                 resnet_cfg("B", norm="FrozenBN")],
                         ids=["basic", "bottleneck-A", "bottleneck-B", "bottleneck-B-frozen"])
def test_sliced_execution_equals_the_masked_reference(cfg):
    channels = len(cfg.MODEL.PIXEL_MEAN)
    backbone = randomize(build_backbone(cfg, ShapeSpec(channels=channels))).eval()
    x = torch.randn(5, channels, 32, 32)
    with torch.no_grad():
        backbone.inference = "mask"
        masked = backbone(x)
        mask_fraction = backbone.executed_fraction
        closed = [(g == 0).float().mean().item() for g in backbone.gates]
        backbone.inference = "slice"
        outputs = {}
        for execution in ("union", "group"):
            backbone.batch_execution = execution
            outputs[execution] = (backbone(x), backbone.executed_fraction)
        single, single_fraction = [], []
        for i in range(5):
            single.append(backbone(x[i:i + 1]))
            single_fraction.append(backbone.executed_fraction)
        single_fraction = torch.cat(single_fraction)
    assert 0.1 < sum(closed) / len(closed) < 0.9  # some, not all, channels are closed
    name = list(masked)[-1]
    for out, _ in outputs.values():
        torch.testing.assert_close(out[name], masked[name], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.cat([s[name] for s in single]), masked[name], rtol=1e-4,
                               atol=1e-4)
    assert (mask_fraction == 1).all()
    # per image, "group" runs what batch-1 slicing runs; "union" runs at least that
    torch.testing.assert_close(outputs["group"][1], single_fraction)
    assert (outputs["union"][1] >= single_fraction - 1e-6).all()
    assert (single_fraction < 1).any()


def test_sliced_execution_follows_changed_weights_and_statistics():
    """The folded, sliced convolutions are cached between forwards and recomputed when a weight
    or a statistic changes in place (load_state_dict) or is replaced."""
    cfg = classifier_cfg()
    backbone = randomize(build_backbone(cfg, ShapeSpec(channels=1))).eval()
    other = randomize(build_backbone(cfg, ShapeSpec(channels=1))).eval()
    with torch.no_grad():
        for p in other.base.parameters():
            p.mul_(1.5)
        other.base.res2[0].block.conv1.norm.running_var.mul_(2.0)
    x = torch.randn(1, 1, 16, 16)

    def outputs(model, mode):
        model.inference = mode
        with torch.no_grad():
            return list(model(x).values())[-1]

    outputs(backbone, "slice")  # fills the cache
    backbone.load_state_dict(other.state_dict())  # in-place copies
    torch.testing.assert_close(outputs(backbone, "slice"), outputs(other, "mask"), rtol=1e-4,
                               atol=1e-4)
    conv = backbone.base.res2[0].block.conv1
    conv.weight = torch.nn.Parameter(torch.zeros_like(conv.weight))  # replaced
    torch.testing.assert_close(outputs(backbone, "slice"), outputs(backbone, "mask"), rtol=1e-4,
                               atol=1e-4)


def test_a_block_with_open_gates_is_the_upstream_block():
    """MoEBlock's forward follows Detectron2's BasicBlock / BottleneckBlock.forward (0.7.2)."""
    torch.manual_seed(0)
    for block, kind, gated in ((BasicBlock(4, 8, stride=2, norm="BN"), "basic", 1),
                               (BottleneckBlock(8, 16, bottleneck_channels=4, stride=2,
                                                norm="BN"), "B", 2)):
        block.eval()
        upstream = copy.deepcopy(block)
        owner = torch.nn.Module()
        moe = MoEBlock(block, kind, range(gated), owner)
        x = torch.randn(2, block.in_channels, 8, 8)
        owner.run = GateRun([torch.ones(2, c) for c in moe.gated_channels()], "mask", "union")
        with torch.no_grad():
            torch.testing.assert_close(moe(x), upstream(x))
            owner.run = GateRun([torch.ones(2, c) for c in moe.gated_channels()], "slice",
                                "union")
            torch.testing.assert_close(moe(x), upstream(x), rtol=1e-5, atol=1e-5)


def test_executed_flops_against_fvcore_and_a_hand_count():
    cfg = classifier_cfg()
    model = build_model(cfg).eval()
    backbone = model.backbone
    images = [{"image": torch.rand(1, 16, 16) * 255}]
    static = FlopCountAnalysis(model.backbone, torch.rand(1, 1, 16, 16))
    static.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        backbone.inference = "mask"
        everything = model(images)[0]["gflops"] * 1e9
        # the backbone (embedding and gates included) plus the head: 32 pooled features -> 3
        assert everything - static.total() == pytest.approx(32 * 3)
        # close all but 2 of the 8 channels of the first block's gate, open every other gate
        for gate in backbone.gating.heads:
            gate.weight.fill_(1.0)
        backbone.gating.heads[0].weight[2:].fill_(-1.0)
        backbone.inference = "slice"
        sliced = model(images)[0]["gflops"] * 1e9
    # res2.0 at 16 x 16: conv1 8 -> 8 channels 3x3 (+ its BN), conv2 8 -> 8 3x3; 6 of 8 of
    # conv1's outputs (and its BN's) and of conv2's inputs (not its BN) do not run
    conv = 8 * 8 * 9 * 16 * 16
    bn = static.by_module()["base.res2.0.block.conv1.norm"]
    assert everything - sliced == pytest.approx(6 / 8 * (conv + bn) + 6 / 8 * conv)


def test_losses_and_gradients_of_a_training_step():
    cfg = classifier_cfg(LAMBDA=0.5, MU=2.0)
    model = build_model(cfg).train()
    images = [{"image": torch.rand(1, 16, 16) * 255, "label": i % 3} for i in range(4)]
    with EventStorage():
        losses = model(images)
    backbone = model.backbone
    labels = torch.tensor([0, 1, 2, 0])
    assert losses["loss_gate_l1"].item() == pytest.approx(
        0.5 * sum(g.sum(1) for g in backbone.gates).mean().item(), rel=1e-5)
    expected = 2.0 * F.cross_entropy(backbone.embedding_classifier(backbone.embedding_out), labels)
    assert losses["loss_embedding"].item() == pytest.approx(expected.item(), rel=1e-5)
    sum(losses.values()).backward()
    for module in (backbone.embedding, backbone.gating, backbone.embedding_classifier):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    # in training every channel is computed; the executed fraction is what slicing would run
    assert backbone.executed_fraction.shape == (4, 6)


def test_fine_tuning_stage_keeps_the_gating_fixed(tmp_path):
    with pytest.raises(ValueError, match="FREEZE_GATING True is the fine-tuning stage"):
        build_model(classifier_cfg(FREEZE_GATING=True))
    cfg = classifier_cfg(FREEZE_GATING=True)
    cfg.MODEL.WEIGHTS = str(tmp_path / "first_stage.pth")
    model = build_model(cfg).train()
    backbone = model.backbone
    assert not any(p.requires_grad for m in backbone.gating_modules() for p in m.parameters())
    assert not backbone.embedding.training and backbone.base.training
    images = [{"image": torch.rand(1, 16, 16) * 255, "label": i % 3} for i in range(2)]
    with EventStorage():
        losses = model(images)
    assert set(losses) == {"loss_cls"}


@pytest.mark.parametrize("key,value,match", [
    ("LAMBDA", -0.1, r"MODEL.DEEPMOE.LAMBDA=-0.1: expected >= 0"),
    ("MU", -1.0, r"MODEL.DEEPMOE.MU=-1.0: expected >= 0"),
    ("WIDEN", 0, r"MODEL.DEEPMOE.WIDEN=0: expected an integer >= 1"),
    ("INFERENCE", "skip", r"MODEL.DEEPMOE.INFERENCE='skip': expected one of"),
    ("BOTTLENECK_VARIANT", "C", r"MODEL.DEEPMOE.BOTTLENECK_VARIANT='C'"),
    ("BASE_BACKBONE", "build_mobilenet_v2_backbone", r"has no residual blocks to gate"),
])
def test_bad_config_is_named(key, value, match):
    cfg = classifier_cfg(**{key: value})
    if key == "BASE_BACKBONE":
        cfg.MODEL.MOBILENET.OUT_FEATURES = ["res5"]
        cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.0] * 3, [1.0] * 3
    with pytest.raises(ValueError, match=match):
        build_model(cfg)


def test_widen_doubles_the_base_and_its_gates():
    narrow = build_model(classifier_cfg()).backbone
    wide = build_model(classifier_cfg(WIDEN=2)).backbone
    assert wide.output_shape()["res4"].channels == 2 * narrow.output_shape()["res4"].channels
    assert [h.out_features for h in wide.gating.heads] == [
        2 * h.out_features for h in narrow.gating.heads]


def _train_digits_closed_worker(output_dir):
    import torch.distributed as dist

    from dynnet_d2.config import load_config
    from dynnet_d2.engine import DynnetTrainer

    cfg = load_config("configs/DeepMoE/deepmoe_R8cifar_200it_digits.yaml",
                      ["OUTPUT_DIR", output_dir, "MODEL.DEVICE", "cpu", "DATASETS.TEST", "()",
                       "SOLVER.MAX_ITER", 3, "SOLVER.IMS_PER_BATCH", 8])
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    if dist.get_rank() == 0:  # rank 0 closes every channel of every block; rank 1 keeps them
        with torch.no_grad():
            for head in trainer.model.module.backbone.gating.heads:
                head.weight.fill_(-1.0)
    trainer.train()


def test_ddp_training_with_every_channel_closed_on_one_rank(tmp_path, monkeypatch):
    from pathlib import Path

    from dynnet_d2.engine.launcher import launch

    monkeypatch.chdir(Path(__file__).resolve().parents[3])
    launch(_train_digits_closed_worker, 2, device="cpu", dist_url="auto", args=(str(tmp_path),))
    assert (tmp_path / "model_final.pth").is_file()
