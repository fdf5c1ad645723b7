"""SkipNet (thesis ch. 2): gates, training stages, real skipping, BatchNorm protection,
executed FLOPs against fvcore and a hand count, and the detector build."""
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from fvcore.nn import FlopCountAnalysis
from torch import nn

import dynnet_d2  # noqa: F401  (registers every component)
from dynnet_d2.config import get_dynnet_cfg, load_config
from dynnet_d2.methods.skipnet import (
    GatedBlock,
    SkipNetBackbone,
    reinforce_loss,
    straight_through,
)
from dynnet_d2.methods.skipnet.gated import GateRun
from dynnet_d2.methods.skipnet.gates import compiled_rnn_step
from dynnet_d2.modeling.backbone import CifarResNet

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


class FixedGate(nn.Module):
    """A gate whose logits are set by the test: (B,) per call, +-20 for execute / skip."""

    def __init__(self):
        super().__init__()
        self.logits = None

    def forward(self, x, state=None):
        return self.logits.to(x.dtype)

    inference_logit = forward

    def decide(self, x, state=None):
        return self(x).item() >= 0


def classifier_cfg(stage="SP", gate="rnn", depth=8, width=4, backbone="build_skipnet_backbone"):
    cfg = get_dynnet_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "ImageClassifier"
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.0], [1.0]
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.CIFAR_RESNET.DEPTH, cfg.MODEL.CIFAR_RESNET.WIDTH = depth, width
    cfg.MODEL.SKIPNET.STAGE, cfg.MODEL.SKIPNET.GATE_TYPE = stage, gate
    return cfg


def gated_backbone(stage="SP", depth=8, width=4, inference="skip",
                   hrl_freeze_bn=True) -> SkipNetBackbone:
    """A CIFAR ResNet-``depth`` with FixedGates (decisions set through ``set_decisions``)."""
    torch.manual_seed(0)
    base = CifarResNet(in_channels=1, depth=depth, width=width, out_features=["res4"])
    backbone = SkipNetBackbone(base=base, gate_type="rnn", stage=stage, inference=inference,
                               hrl_freeze_bn=hrl_freeze_bn)
    for block in backbone.gated_blocks.values():
        block.gate = FixedGate()
    return backbone


def set_decisions(backbone, decisions):
    """decisions (B, N) of 0/1 -> logits +-20 of every FixedGate."""
    for i, block in enumerate(backbone.gated_blocks.values()):
        block.gate.logits = (decisions[:, i].float() * 40 - 20)


def count_block_inputs(backbone):
    counts = []
    for i, block in enumerate(backbone.gated_blocks.values()):
        counts.append(0)
        block.block.register_forward_pre_hook(
            lambda m, args, i=i: counts.__setitem__(i, counts[i] + args[0].shape[0]))
    return counts


def test_straight_through_is_hard_forward_and_sigmoid_gradient_backward():
    logits = torch.tensor([-2.0, -0.1, 0.0, 0.3, 4.0], requires_grad=True)
    p = torch.sigmoid(logits)
    gates = straight_through(p)
    assert gates.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (gates * weights).sum().backward()
    s = torch.sigmoid(logits.detach())
    torch.testing.assert_close(logits.grad, weights * s * (1 - s))


def test_reinforce_loss_matches_hand_computation():
    # Two inputs, three gates: g = [[1, 0, 0], [0, 1, 1]], losses L = [0.5, 2.0].
    decisions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    log_probs = torch.tensor([[-0.1, -0.2, -0.3], [-0.4, -0.5, -0.6]], requires_grad=True)
    task_loss = torch.tensor([0.5, 2.0])
    alpha, beta = 0.3, 0.1
    loss = reinforce_loss(decisions, log_probs, task_loss, alpha=alpha, beta=beta)
    # future skips: [[2, 2, 1], [1, 0, 0]]; r = -(beta L - alpha/3 * future)
    r = torch.tensor([[-(0.05 - 0.2), -(0.05 - 0.2), -(0.05 - 0.1)],
                      [-(0.2 - 0.1), -0.2, -0.2]])
    expected = -(log_probs.detach() * r).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    torch.testing.assert_close(log_probs.grad, -r / 2)


@pytest.mark.parametrize("alpha,skip_is_optimal", [(0.5, True), (0.01, False)])
def test_reinforce_gradient_sign_scale_and_optimum_on_a_toy_problem(alpha, skip_is_optimal):
    """One gate: executing costs a loss of 0.1, skipping a loss of 2.0 but earns alpha.
    Expected objective beta L(g) - alpha (1 - g) with beta = alpha / N = alpha: skipping wins iff
    alpha * 2.0 - alpha < alpha * 0.1, never; so use beta = 0.05 explicitly."""
    beta, losses = 0.05, {1.0: 0.1, 0.0: 2.0}
    theta = torch.tensor([0.3], requires_grad=True)

    def loss_given(g):
        decision = torch.tensor([[g]])
        log_prob = -nn.functional.binary_cross_entropy_with_logits(theta, decision[0],
                                                                   reduction="none")
        return reinforce_loss(decision, log_prob[None], torch.tensor([losses[g]]),
                              alpha=alpha, beta=beta)

    # Exact expectation of the REINFORCE gradient over both actions = dJ/dtheta.
    p = torch.sigmoid(theta.detach())
    grad = sum(weight * torch.autograd.grad(loss_given(g), theta)[0]
               for g, weight in ((1.0, p), (0.0, 1 - p)))
    expected = p * (1 - p) * (beta * losses[1.0] - (beta * losses[0.0] - alpha))
    torch.testing.assert_close(grad, expected)

    # Sampled SGD reaches the optimum: p(execute) -> 0 when skipping is cheaper, -> 1 otherwise.
    torch.manual_seed(0)
    optimizer = torch.optim.SGD([theta], lr=5.0)
    for _ in range(400):
        g = float(torch.bernoulli(torch.sigmoid(theta.detach())))
        optimizer.zero_grad()
        loss_given(g).backward()
        optimizer.step()
    p_execute = float(torch.sigmoid(theta.detach()))
    assert (p_execute < 0.1) if skip_is_optimal else (p_execute > 0.9), p_execute



def test_compiled_rnn_gate_step_equals_pytorchs_gate():
    """compiled_rnn_step (numba) against the PyTorch gate: logit, LSTM state, several steps."""
    torch.manual_seed(0)
    model = build_model(classifier_cfg(stage="SP", gate="rnn", depth=14)).eval()
    gates = [g.gate for g in model.backbone.gated_blocks.values()]
    torch_run = GateRun("hard", model.backbone.lstm, 0.0)
    host_run = GateRun("hard", model.backbone.lstm, 0.0, compiled=True)
    step = compiled_rnn_step()
    with torch.inference_mode():
        for gate in gates[:3]:
            x = torch.randn(1, 4, 6, 6)
            expected = float(gate(x, torch_run))
            w_ih, bias, w_hh, w_out, b_out = gate._inference_weights(model.backbone.lstm, 36)[-1]
            if host_run.rnn_state is None:
                host_run.rnn_state = (np.zeros(len(w_out), np.float32),
                                      np.zeros(len(w_out), np.float32))
            logit = step(x.numpy(), w_ih, bias, w_hh, *host_run.rnn_state, w_out, b_out)
            assert logit == pytest.approx(expected, abs=1e-5)
            for host, reference in zip(host_run.rnn_state, torch_run.rnn_state):
                np.testing.assert_allclose(host, reference[0].numpy(), atol=1e-5)


def test_compiled_gates_decide_and_predict_as_the_pytorch_path_at_batch_1():
    torch.manual_seed(0)
    cfg = classifier_cfg(stage="SP", gate="rnn", depth=14)
    model = build_model(cfg).eval()
    for i, block in enumerate(model.backbone.gated_blocks.values()):  # a mix of decisions
        with torch.no_grad():
            block.gate.project_out.bias.fill_(4.0 if i % 3 else -4.0)
    images = [{"image": torch.rand(1, 12, 12) * 255} for _ in range(4)]
    runs = {}
    for compiled in (True, False):
        model.backbone.compiled_gates = compiled
        with torch.inference_mode():
            outputs = [model([image])[0] for image in images]
            decisions = torch.cat([model([i]) and model.backbone.gate_decisions for i in images])
        runs[compiled] = (outputs, decisions)
    assert torch.equal(runs[True][1], runs[False][1])
    assert 0 < runs[True][1].float().mean() < 1
    for a, b in zip(runs[True][0], runs[False][0]):
        torch.testing.assert_close(a["scores"], b["scores"], rtol=1e-5, atol=1e-6)
        assert a["gflops"] == b["gflops"]


@pytest.mark.parametrize("batch", [1, 6])
def test_skipped_blocks_are_not_executed_and_outputs_equal_the_masked_formulation(batch):
    backbone = gated_backbone(depth=14).eval()  # 6 gated blocks, two with projection shortcuts
    torch.manual_seed(1)
    decisions = torch.randint(0, 2, (batch, 6))
    decisions[0, 3] = 1 - decisions[0, 3]  # vary the pattern
    set_decisions(backbone, decisions)
    x = torch.randn(batch, 1, 16, 16)
    counts = count_block_inputs(backbone)
    with torch.no_grad():
        skipped = backbone(x)["res4"]
    assert counts == decisions.sum(0).tolist()
    assert torch.equal(backbone.gate_decisions, decisions.float())
    backbone.inference = "mask"
    with torch.no_grad():
        masked = backbone(x)["res4"]
    assert counts == [c + batch for c in decisions.sum(0).tolist()]  # masking runs every block
    torch.testing.assert_close(skipped, masked, rtol=1e-5, atol=1e-5)


def test_rnn_gate_folded_inference_equals_its_forward_and_follows_new_weights():
    torch.manual_seed(0)
    model = build_model(classifier_cfg(stage="SP", gate="rnn", depth=14)).eval()
    images = [{"image": torch.rand(1, 12, 12) * 255} for _ in range(3)]
    with torch.no_grad():  # batch 3: the gates' forward
        batched = model(images)
        decisions = model.backbone.gate_decisions.clone()
    with torch.inference_mode():  # batch 1: the folded inference_logit path
        singles = [model([image])[0] for image in images]
        single_decisions = torch.cat([model([i]) and model.backbone.gate_decisions
                                      for i in images])
    assert torch.equal(single_decisions, decisions)
    for one, many in zip(singles, batched):
        torch.testing.assert_close(one["scores"], many["scores"], rtol=1e-4, atol=1e-5)
        assert one["gflops"] == many["gflops"]
    gate = next(iter(model.backbone.gated_blocks.values())).gate
    x = torch.rand(2, 4, 6, 6)
    for _ in range(2):  # the folded weights are rebuilt after the parameters change
        from dynnet_d2.methods.skipnet.gated import GateRun
        expected = gate(x, GateRun("hard", model.backbone.lstm, 0.0))
        with torch.no_grad():
            got = gate.inference_logit(x, GateRun("hard", model.backbone.lstm, 0.0))
        torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            gate.project_in.weight.mul_(2.0)


def test_hrl_and_sdv_train_only_executed_inputs_and_spare_batchnorm_statistics():
    backbone = gated_backbone(stage="HRL", hrl_freeze_bn=False).train()
    backbone.base.stem.eval()  # the stem's BatchNorm would mix the two inputs before block 0
    first = next(iter(backbone.gated_blocks.values())).block
    bn = first.conv1.norm
    x = torch.randn(2, 1, 8, 8)
    set_decisions(backbone, torch.tensor([[1, 1, 1], [0, 1, 1]]))
    backbone(x)
    with_skipped = bn.running_mean.clone(), bn.running_var.clone()

    alone = gated_backbone(stage="HRL", hrl_freeze_bn=False).train()
    alone.base.stem.eval()
    set_decisions(alone, torch.tensor([[1, 1, 1]]))
    alone(x[:1])
    bn_alone = next(iter(alone.gated_blocks.values())).block.conv1.norm
    torch.testing.assert_close(with_skipped[0], bn_alone.running_mean)
    torch.testing.assert_close(with_skipped[1], bn_alone.running_var)
    assert backbone.gate_log_probs.shape == (2, 3)


def test_hrl_freezes_batchnorm_statistics_by_default():
    backbone = gated_backbone(stage="HRL").train()
    assert backbone.training and backbone.base.training
    norms = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    set_decisions(backbone, torch.tensor([[1, 1, 1], [1, 0, 1]]))
    backbone(torch.randn(2, 1, 8, 8) * 3 + 1)["res4"].sum().backward()
    assert all(not m.training for m in norms)
    for m, (mean, var) in zip(norms, before):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
    assert any(m.weight.grad is not None for m in norms)  # the affine parameters still learn
    sp = gated_backbone(stage="SP").train()  # other stages train their BatchNorm as usual
    assert all(m.training for m in sp.modules() if isinstance(m, nn.BatchNorm2d))


def test_sp_trains_gates_through_the_straight_through_estimator():
    model = build_model(classifier_cfg(stage="SP", gate="ffgate1"))
    batch = [{"image": torch.rand(1, 12, 12) * 255, "label": i % 10} for i in range(4)]
    with EventStorage():
        losses = model(batch)
    assert set(losses) == {"loss_cls"}
    losses["loss_cls"].backward()
    gate_grads = [p.grad for n, p in model.named_parameters() if ".gate." in n]
    assert gate_grads and all(g is not None for g in gate_grads)
    assert any(g.abs().sum() > 0 for g in gate_grads)


def test_hrl_adds_the_policy_loss_and_gates_learn_only_from_it():
    model = build_model(classifier_cfg(stage="HRL"))
    batch = [{"image": torch.rand(1, 12, 12) * 255, "label": i % 10} for i in range(4)]
    with EventStorage():
        losses = model(batch)
    assert set(losses) == {"loss_cls", "loss_policy"}
    losses["loss_cls"].backward()
    assert all(p.grad is None for n, p in model.named_parameters() if ".gate." in n)


def test_block_costs_equal_fvcore_and_a_skipped_block_saves_its_hand_count():
    model = build_model(classifier_cfg(stage="SP", gate="ffgate2", depth=8, width=4)).eval()
    images = torch.zeros(1, 1, 12, 12)
    total, savings = model.flops.static((1, 12, 12), "cpu")
    # The static total is fvcore's count of the whole network with every block executed.
    model.backbone.static = True
    reference = FlopCountAnalysis(_Logits(model), images)
    assert total == reference.total()
    model.backbone.static = False
    # Block 0 of res2 (4 -> 4 channels at 12 x 12, identity shortcut): two 3x3 convolutions and
    # two affine BatchNorms (fvcore counts 2 per element in eval mode).
    h = w = 12
    by_hand = 2 * (h * w * 4 * 4 * 9) + 2 * (2 * 4 * h * w)
    assert savings[0] == by_hand
    # Block 0 of res3 (4 -> 8, stride 2, projection shortcut kept when skipped).
    block = list(model.backbone.gated_blocks.values())[1].block
    standalone = FlopCountAnalysis(block.eval(), torch.zeros(1, 4, 12, 12)).by_module()
    assert savings[1] == standalone[""] - standalone["shortcut"]
    # An image that skips block 0 only costs the static total minus that block.
    executed = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    per_image = model.flops.per_image((1, 12, 12), executed, "cpu")
    assert per_image.tolist() == [total - by_hand, total]


class _Logits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.logits(images)


def test_plain_classifier_reports_fvcore_flops_per_image():
    model = build_model(classifier_cfg(backbone="build_cifar_resnet_backbone")).eval()
    with torch.no_grad():
        outputs = model([{"image": torch.zeros(1, 12, 12)}] * 2)
    expected = FlopCountAnalysis(_Logits(model), torch.zeros(1, 1, 12, 12)).total() / 1e9
    assert [o["gflops"] for o in outputs] == pytest.approx([expected, expected])
    assert outputs[0]["scores"].shape == (10,)
    torch.testing.assert_close(outputs[0]["scores"].sum(), torch.tensor(1.0))


@pytest.mark.parametrize("key,value,match", [
    ("MODEL.SKIPNET.GATE_TYPE", "lstm2", "GATE_TYPE='lstm2'"),
    ("MODEL.SKIPNET.ALPHA", -0.1, "ALPHA=-0.1"),
    ("MODEL.SKIPNET.STAGE", "RL", "STAGE='RL'"),
    ("MODEL.SKIPNET.BASE_BACKBONE", "build_mobilenet_v2_fpn_backbone", "no residual blocks"),
    ("MODEL.CIFAR_RESNET.DEPTH", 40, "DEPTH=40 is not 6n\\+2"),
])
def test_bad_skipnet_configs_name_the_key(key, value, match):
    cfg = classifier_cfg()
    cfg.merge_from_list([key, value])
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.0] * 3, [1.0] * 3  # MobileNetV2 is RGB
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    with pytest.raises(ValueError, match=match):
        build_model(cfg)


def test_hrl_is_refused_for_detectors():
    cfg = load_config(str(CONFIGS / "SkipNet/faster_rcnn_skipnet_R18half_FPN_2800it_shapes.yaml"),
                      ["MODEL.SKIPNET.STAGE", "HRL"])
    with pytest.raises(ValueError, match="STAGE='HRL'.*ImageClassifier"):
        build_model(cfg)


@pytest.mark.parametrize("gate", ["ffgate1", "ffgate2", "rnn"])
def test_skipnet_faster_rcnn_trains_and_skips_at_inference(gate):
    cfg = load_config(str(CONFIGS / "SkipNet/faster_rcnn_skipnet_R18half_FPN_2800it_shapes.yaml"),
                      ["MODEL.SKIPNET.GATE_TYPE", gate, "MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    model = build_model(cfg)
    gated = model.backbone.gated_blocks
    assert len(gated) == 8 and all(isinstance(b, GatedBlock) for b in gated.values())
    images = [{"image": torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8), "height": 96,
               "width": 128, "instances": _one_box()} for _ in range(2)]
    with EventStorage():
        losses = model(images)
    sum(losses.values()).backward()
    gate_grads = [p.grad for n, p in model.named_parameters() if ".gate." in n and p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in gate_grads)
    model.eval()
    with torch.no_grad():
        outputs = model([{k: d[k] for k in ("image", "height", "width")} for d in images])
    assert len(outputs) == 2 and model.backbone.gate_decisions.shape == (2, 8)


def _one_box():
    from detectron2.structures import Boxes, Instances

    instances = Instances((96, 128))
    instances.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 60.0, 50.0]]))
    instances.gt_classes = torch.tensor([3])
    return instances


def test_cifar_resnet_shapes_and_strides():
    backbone = CifarResNet(in_channels=1, depth=20, width=8, stem_stride=2,
                           out_features=["res2", "res3", "res4"])
    assert len(backbone.res2) == 3
    out = backbone(torch.zeros(2, 1, 28, 28))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (2, 8, 14, 14), "res3": (2, 16, 7, 7), "res4": (2, 32, 4, 4)}
    shapes = backbone.output_shape()
    assert [(shapes[k].channels, shapes[k].stride) for k in ("res2", "res3", "res4")] == [
        (8, 2), (16, 4), (32, 8)]


def _train_digits_worker(output_dir, opts):
    from dynnet_d2.engine import DynnetTrainer

    cfg = load_config(str(CONFIGS / "SkipNet/skipnet_R8cifar_sp_200it_digits.yaml"),
                      ["OUTPUT_DIR", output_dir, "MODEL.DEVICE", "cpu", "DATASETS.TEST", "()",
                       "SOLVER.MAX_ITER", 3, "SOLVER.IMS_PER_BATCH", 8] + opts)
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()


def test_ddp_training_survives_blocks_that_no_input_executes(tmp_path):
    """SDV with skip rate 1: every gated block is unused in every step, which DDP rejects
    unless it looks for unused parameters (dynnet_d2 tells it to for HRL and SDV)."""
    from dynnet_d2.engine.launcher import launch

    launch(_train_digits_worker, 2, device="cpu", dist_url="auto",
           args=(str(tmp_path), ["MODEL.SKIPNET.STAGE", "SDV", "MODEL.SKIPNET.SDV_SKIP_RATE", 1.0]))
    assert (tmp_path / "model_final.pth").is_file()


def test_detectron2_bottleneck_resnet_is_gated_and_skips_like_it_masks():
    """Detectron2's own ResNet-50 (bottleneck blocks, narrow) as MODEL.SKIPNET.BASE_BACKBONE."""
    cfg = get_dynnet_cfg()
    cfg.MODEL.SKIPNET.BASE_BACKBONE = "build_resnet_backbone"
    cfg.MODEL.SKIPNET.GATE_TYPE = "ffgate2"
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.NORM = 50, "BN"
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 8, 16
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    torch.manual_seed(0)
    from dynnet_d2.methods.skipnet import build_skipnet_backbone

    backbone = build_skipnet_backbone(cfg, ShapeSpec(channels=3))
    assert len(backbone.gated_blocks) == 16  # 3 + 4 + 6 + 3 bottleneck blocks
    x = torch.randn(4, 3, 64, 64)
    backbone.train()
    backbone(x)["res5"].sum().backward()
    backbone.eval()
    with torch.no_grad():
        skipped = backbone(x)["res5"]
        backbone.inference = "mask"
        masked = backbone(x)["res5"]
    torch.testing.assert_close(skipped, masked, rtol=1e-4, atol=1e-4)


def test_skip_ratio_per_class_and_timing_helpers():
    from dynnet_d2.methods.skipnet.analysis import (
        run_gated,
        skip_ratio_per_class,
        time_variants,
    )

    decisions = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 1], [1, 1, 0]])
    labels = torch.tensor([0, 0, 2, 2])
    ratios = skip_ratio_per_class(decisions, labels, 3)
    assert ratios[0].tolist() == [0.5, 1.0, 0.0] and ratios[2].tolist() == [0.0, 0.0, 0.5]
    assert all(v != v for v in ratios[1])  # NaN: class 1 has no image

    model = build_model(classifier_cfg(stage="SP", gate="rnn", depth=8))
    images = (torch.rand(5, 1, 12, 12) * 255).to(torch.uint8)
    run = run_gated(model, images, batch_size=2)
    assert run["decisions"].shape == (5, 3) and run["gflops"].shape == (5,)
    timings = time_variants({"skip": (model, "skip"), "mask": (model, "mask")}, images, 1,
                            repeats=2)
    assert set(timings) == {"skip", "mask"}
    assert all(len(t["runs_ms"]) == 2 and t["median_ms_per_image"] > 0 for t in timings.values())
    assert model.backbone.inference == "mask"  # the last variant's mode is left set
    time_variants({"eager": (model, "skip-eager")}, images[:1], 1, repeats=1)
    assert model.backbone.inference == "skip" and not model.backbone.compiled_gates
    time_variants({"compiled": (model, "skip")}, images[:1], 1, repeats=1)
    assert model.backbone.compiled_gates
