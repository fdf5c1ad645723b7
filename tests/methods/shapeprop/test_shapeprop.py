"""ShapeProp (thesis ch. 8): MIL bags and loss (Eq. 8.2-8.3) against hand computations, kernel
normalisation, the batched message passing of Eq. 8.4 against a naive per-RoI, per-pixel loop
(forward and gradient), how far a message travels, the shape loss, the heads' losses without
masks, inference outputs and configuration errors; the benchmark's best-overlap metric against
a hand computation and the maps it judges."""
import math
from pathlib import Path

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import StandardROIHeads, build_model
from detectron2.modeling.roi_heads.mask_head import build_mask_head
from detectron2.structures import BitMasks, Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage

import dynnet_d2  # noqa: F401  (registers ShapeProp's heads)
from dynnet_d2.config import load_config
from dynnet_d2.methods.shapeprop import (
    SaliencyHead,
    SaliencyPropagation,
    ShapeActivationEncoder,
    ShapePropMaskHead,
    analysis,
    mil_bag_labels,
    mil_loss,
    normalized_kernels,
    propagate,
    select_class_maps,
)
from dynnet_d2.methods.shapeprop.heads import shape_loss


def test_mil_bags_of_a_hand_made_example():
    proposals = Boxes(torch.tensor([[0.0, 0, 10, 10],    # = the class-1 box
                                    [0.0, 0, 10, 5],     # IoU 0.5 with it: not above t
                                    [20.0, 20, 30, 30],  # IoU 100/120 with the class-0 box
                                    [50.0, 50, 60, 60],  # nothing
                                    [0.0, 0, 30, 32]]))  # IoU 0.11 and 0.125: nothing
    gt = Boxes(torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 32]]))
    labels = mil_bag_labels(proposals, gt, torch.tensor([1, 0]), num_classes=3,
                            iou_threshold=0.5)
    assert labels.tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]]
    # a proposal over two boxes of different classes is a positive bag of both
    both = mil_bag_labels(Boxes(torch.tensor([[0.0, 0, 10, 10]])),
                          Boxes(torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 9]])),
                          torch.tensor([2, 0]), num_classes=3, iou_threshold=0.5)
    assert both.tolist() == [[1, 0, 1]]
    empty = mil_bag_labels(proposals, Boxes(torch.zeros(0, 4)), torch.zeros(0), 3, 0.5)
    assert empty.shape == (5, 3) and not empty.any()


def test_mil_loss_matches_a_hand_computation():
    logits = torch.zeros(2, 2, 2, 2)
    logits[0, 0] = torch.tensor([[1.0, 3.0], [0.0, 0.0]])  # avg 1, max 3
    logits[0, 1] = -2.0
    logits[1, 0] = torch.tensor([[-1.0, 1.0], [2.0, 2.0]])  # avg 1, max 2
    logits[1, 1] = 0.5
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])

    def bce(s, y):
        p = 1 / (1 + math.exp(-s))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    avg = (bce(1, 1) + bce(-2, 0) + bce(1, 0) + bce(0.5, 1)) / 4
    assert float(mil_loss(logits, labels, "avg")) == pytest.approx(avg, rel=1e-6)
    top = (bce(3, 1) + bce(-2, 0) + bce(2, 0) + bce(0.5, 1)) / 4
    assert float(mil_loss(logits, labels, "max")) == pytest.approx(top, rel=1e-6)
    none = torch.zeros(0, 2, 2, 2, requires_grad=True)
    loss = mil_loss(none, torch.zeros(0, 2))
    loss.backward()
    assert float(loss.detach()) == 0.0 and none.grad is not None
    with pytest.raises(ValueError, match="MIL_AGGREGATION='sum'"):
        mil_loss(logits, labels, "sum")


def test_class_maps_are_selected_per_roi():
    logits = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    chosen = select_class_maps(logits, torch.tensor([2, 0]))
    assert chosen.shape == (2, 1, 2, 2)
    assert torch.equal(chosen[0, 0], logits[0, 2]) and torch.equal(chosen[1, 0], logits[1, 0])


def test_class_maps_compute_only_the_rois_classes_equal_to_all_maps():
    torch.manual_seed(0)
    head = SaliencyHead(in_channels=6, num_classes=5, num_convs=1, conv_dim=8)
    trunk = head.trunk(torch.randn(3, 6, 4, 4)).detach().requires_grad_()
    classes = torch.tensor([4, 0, 2])
    fast = head.class_maps(trunk, classes)
    full = select_class_maps(head.maps(trunk), classes)
    assert fast.shape == (3, 1, 4, 4) and torch.allclose(fast, full, atol=1e-6)
    g = torch.randn_like(fast)
    for a, b in zip(torch.autograd.grad((fast * g).sum(), [trunk, *head.predictor.parameters()]),
                    torch.autograd.grad((full * g).sum(), [trunk, *head.predictor.parameters()])):
        assert torch.allclose(a, b, atol=1e-6)


def test_shape_activation_is_rectified_and_divided_by_its_maximum():
    logits = torch.tensor([[[[-1.0, 2.0], [4.0, 1.0]]], [[[-3.0, -1.0], [-2.0, -5.0]]]])
    normalized = ShapeActivationEncoder.normalize(logits, eps=0.0 + 1e-12)
    assert torch.allclose(normalized[0, 0], torch.tensor([[0.0, 0.5], [1.0, 0.25]]))
    assert torch.equal(normalized[1], torch.zeros(1, 2, 2))  # all negative: no prior, no NaN
    encoder = ShapeActivationEncoder(num_convs=2, conv_dim=5)
    x = torch.randn(3, 1, 6, 6, requires_grad=True)
    out = encoder(x)
    assert out.shape == (3, 5, 6, 6)
    out.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in encoder.parameters())
    assert ShapeActivationEncoder(num_convs=1, conv_dim=4).convs[-1].in_channels == 1
    with pytest.raises(ValueError, match="FUSION_NUM_CONV=0"):
        ShapeActivationEncoder(num_convs=0)


def test_kernels_are_normalised_over_the_window():
    weights = torch.randn(3, 4 * 9, 5, 6) * 5
    kernels = normalized_kernels(weights, 3)
    assert kernels.shape == (3, 4, 9, 30)
    assert (kernels > 0).all()
    assert torch.allclose(kernels.sum(dim=2), torch.ones(3, 4, 30))
    with pytest.raises(ValueError, match="not a multiple of 3 x 3"):
        normalized_kernels(torch.randn(1, 10, 2, 2), 3)


def naive_step(latent, kernels, r):
    """Eq. 8.4 written out: one RoI, one channel and one location at a time."""
    n, c, h, w = latent.shape
    out = torch.zeros_like(latent)
    half = r // 2
    for i in range(n):
        for ch in range(c):
            k = kernels[i, ch if kernels.shape[1] > 1 else 0]
            for u in range(h):
                for v in range(w):
                    total = latent.new_zeros(())
                    for p in range(u - half, u + half + 1):
                        for q in range(v - half, v + half + 1):
                            if 0 <= p < h and 0 <= q < w:
                                offset = (p - u + half) * r + (q - v + half)
                                total = total + latent[i, ch, p, q] * k[offset, u * w + v]
                    out[i, ch, u, v] = total
    return out


@pytest.mark.parametrize("groups", [3, 1], ids=["per-channel", "channel-agnostic"])
def test_batched_message_passing_equals_the_naive_loop(groups):
    torch.manual_seed(0)
    r, h, w = 3, 4, 5
    latent = torch.randn(2, 3, h, w, requires_grad=True)
    weights = torch.randn(2, groups * r * r, h, w, requires_grad=True)
    kernels = normalized_kernels(weights, r)
    batched = propagate(latent, kernels, r, steps=2)
    naive = naive_step(naive_step(latent, kernels, r), kernels, r)
    assert torch.allclose(batched, naive, atol=1e-6)
    g = torch.randn_like(batched)
    grads_batched = torch.autograd.grad((batched * g).sum(), (latent, weights),
                                        retain_graph=True)
    grads_naive = torch.autograd.grad((naive * g).sum(), (latent, weights))
    for a, b in zip(grads_batched, grads_naive):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("groups", [3, 1], ids=["per-channel", "channel-agnostic"])
def test_propagation_backward_passes_gradcheck(groups):
    """The hand-written backward of the propagation against finite differences (float64)."""
    torch.manual_seed(0)
    r, h, w = 3, 3, 4
    latent = torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, groups * r * r, h, w, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: propagate(a, normalized_kernels(b, r), r, steps=3), (latent, weights))


def test_a_seed_pixel_reaches_every_location_after_max_h_w_steps():
    h, w, r = 5, 7, 3
    seed = torch.zeros(1, 1, h, w)
    seed[0, 0, 0, 0] = 1.0
    uniform = normalized_kernels(torch.zeros(1, r * r, h, w), r)
    # the far corner is max(H, W) - 1 = 6 steps away (Chebyshev distance)
    assert propagate(seed, uniform, r, steps=5)[0, 0, h - 1, w - 1] == 0
    assert (propagate(seed, uniform, r, steps=max(h, w)) > 0).all()


def test_modules_build_forward_and_backward():
    torch.manual_seed(0)
    features = torch.randn(4, 8, 6, 6, requires_grad=True)
    head = SaliencyHead(in_channels=8, num_classes=5, num_convs=2, conv_dim=16)
    for agnostic in (False, True):
        logits = head(features)
        assert logits.shape == (4, 5, 6, 6)
        saliency = select_class_maps(logits, torch.tensor([0, 1, 4, 2]))
        module = SaliencyPropagation(in_channels=8, latent_dim=4, conv_dim=16,
                                     channel_agnostic=agnostic)
        assert module.kernel_predictor[-1].out_channels == (1 if agnostic else 4) * 9
        shape, latent = module(saliency, features)
        assert shape.shape == (4, 1, 6, 6) and latent.shape == (4, 4, 6, 6)
        module.steps = 6  # the default is max(H, W) = 6
        again, _ = module(saliency, features)
        assert torch.equal(shape, again)
        module.zero_grad()
        (shape.sum() + mil_loss(logits, torch.zeros(4, 5))).backward()
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="WINDOW=4"):
        SaliencyPropagation(in_channels=8, window=4)
    with pytest.raises(ValueError, match="KERNEL_CONV_SIZE=2"):
        SaliencyPropagation(in_channels=8, kernel_conv_size=2)
    # a kernel predictor on a trunk's features: no conv layers of its own, a 1x1 predictor
    shared = SaliencyPropagation(in_channels=16, latent_dim=4, kernel_num_convs=0,
                                 kernel_conv_size=1)
    assert len(shared.kernel_predictor[0]) == 0 and len(shared.encoder) == 4  # 2 conv + ReLU
    assert shared.kernel_predictor[-1].in_channels == 16
    assert shared.kernel_predictor[-1].kernel_size == (1, 1)
    assert shared(saliency, head.trunk(features))[0].shape == (4, 1, 6, 6)


CONFIG = (Path(__file__).resolve().parents[3] / "configs/ShapeProp/"
          "shapeprop_MobileNetV2_FPN_2800it_shapesmasksbase1.yaml")
BASELINE_CONFIG = CONFIG.with_name(
    "mask_rcnn_agnostic_MobileNetV2_FPN_2800it_shapesmasksbase1.yaml")


def shapeprop_mask_head(opts=()):
    cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu", *opts])
    torch.manual_seed(0)
    head = build_mask_head(cfg, ShapeSpec(channels=8, width=14, height=14))
    assert isinstance(head, ShapePropMaskHead)
    return head


@pytest.mark.parametrize("opts,prior", [
    ((), 16),  # the Shape Activation re-encoded to FUSION_CONV_DIM channels (the default)
    (("MODEL.SHAPEPROP.FUSION_CONV_DIM", 5), 5),
    (("MODEL.SHAPEPROP.FUSION", "latent", "MODEL.SHAPEPROP.LATENT_DIM", 6), 6),
], ids=["activation", "activation-5", "latent"])
def test_fusion_concatenates_its_prior_to_the_mask_heads_input(opts, prior):
    head = shapeprop_mask_head(opts)
    assert head.mask_layers[0].in_channels == 8 + prior
    assert (head.fusion is None) == ("latent" in opts)
    with torch.no_grad():  # a positive Shape Activation, so that its ReLU passes gradients
        head.propagation.decoder.bias.fill_(1.0)
    head.train()
    with EventStorage():
        losses = head(torch.randn(3, 8, 14, 14, requires_grad=True),
                      [fg_proposals([True, True, False])])
    sum(losses.values()).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unknown_fusion_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="FUSION='sum'"):
        shapeprop_mask_head(("MODEL.SHAPEPROP.FUSION", "sum"))


def test_shared_features_feed_the_kernel_predictor_from_the_saliency_trunk():
    head = shapeprop_mask_head(("MODEL.SHAPEPROP.SHARE_FEATURES", True,
                                "MODEL.SHAPEPROP.KERNEL_CONV_SIZE", 1))
    assert head.share_features and len(head.propagation.kernel_predictor[0]) == 0
    assert head.propagation.kernel_predictor[-1].in_channels == head.saliency.out_channels
    head.train()
    with EventStorage():
        losses = head(torch.randn(2, 8, 14, 14), [fg_proposals([True, True])])
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in head.parameters())


def fg_proposals(valid):
    n = len(valid)
    instances = Instances((40, 60))
    instances.proposal_boxes = Boxes(torch.tensor([[2.0 * i, 2, 2.0 * i + 20, 30]
                                                   for i in range(n)]))
    instances.gt_classes = torch.arange(n) % 4
    instances.gt_masks = PolygonMasks([[[2.0 * i + 2, 4, 2.0 * i + 15, 4, 2.0 * i + 15, 25]]
                                       for i in range(n)])
    instances.gt_mask_valid = torch.tensor(valid)
    return instances


def test_shape_loss_matches_a_hand_computation():
    instances = Instances((10, 10))
    instances.proposal_boxes = Boxes(torch.tensor([[0.0, 0, 10, 10]]))
    instances.gt_masks = PolygonMasks([[[0.0, 0, 5, 0, 5, 10, 0, 10]]])  # the left half
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]]])

    def sig(v):
        return 1 / (1 + math.exp(-v))

    expected = -(math.log(sig(2)) + math.log(1 - sig(-1)) + math.log(sig(0))
                 + math.log(1 - sig(3))) / 4
    assert float(shape_loss(logits, [instances])) == pytest.approx(expected, rel=1e-6)


def test_mask_head_losses_skip_instances_without_masks():
    head = shapeprop_mask_head().train()
    features = torch.randn(3, 8, 14, 14)
    with EventStorage():
        some = head(features, [fg_proposals([True, False, True])])
        only_valid = head(features[[0, 2]], [fg_proposals([True, False, True])[[0, 2]]])
        none = head(features, [fg_proposals([False, False, False])])
    assert set(some) == {"loss_mask", "loss_shape"}
    # the instance without a mask changes neither loss (RoIs are independent)
    for key in some:
        assert torch.allclose(some[key], only_valid[key], atol=1e-6)
    total = none["loss_mask"] + none["loss_shape"]
    assert torch.isfinite(total) and float(total.detach()) == 0.0
    total.backward()
    assert all(p.grad is not None for p in head.parameters())


def test_mask_head_inference_attaches_saliency_and_shape():
    head = shapeprop_mask_head().eval()
    detections = Instances((40, 60))
    detections.pred_boxes = Boxes(torch.tensor([[0.0, 0, 20, 20], [5.0, 5, 30, 30]]))
    detections.pred_classes = torch.tensor([1, 3])
    with torch.no_grad():
        out = head(torch.randn(2, 8, 14, 14), [detections])[0]
    assert out.pred_masks.shape == (2, 1, 28, 28)
    for field in ("pred_saliency", "pred_shape"):
        maps = out.get(field)
        assert maps.shape == (2, 14, 14) and ((maps >= 0) & (maps <= 1)).all()


def test_shapeprop_roi_heads_need_the_shapeprop_mask_head():
    for opts in (["MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead"],
                 ["MODEL.MASK_ON", False]):
        cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu"] + opts)
        with pytest.raises(ValueError, match="needs the ShapeProp mask head"):
            build_model(cfg)
    cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu", "MODEL.SHAPEPROP.MIL_AGGREGATION",
                                    "median"])
    with pytest.raises(ValueError, match="MIL_AGGREGATION='median'"):
        build_model(cfg)


def sampled_training_batch(heads):
    """Sampled proposals (with their MIL bags) and FPN features of one 64 x 64 image."""
    torch.manual_seed(0)
    targets = Instances((64, 64))
    targets.gt_boxes = Boxes(torch.tensor([[0.0, 0, 20, 20], [30.0, 30, 60, 60]]))
    targets.gt_classes = torch.tensor([4, 7])
    targets.gt_masks = PolygonMasks([[[0.0, 0, 20, 0, 0, 20]], [[30.0, 30, 60, 30, 60, 60]]])
    targets.gt_mask_valid = torch.tensor([True, False])
    proposals = Instances((64, 64))
    proposals.proposal_boxes = Boxes(torch.tensor([
        [1.0, 1, 20, 20], [2.0, 0, 19, 21], [31.0, 29, 60, 59],  # foreground
        [40.0, 0, 60, 10], [0.0, 40, 12, 62], [25.0, 2, 40, 20], [5.0, 30, 25, 50],
        [45.0, 45, 50, 50]]))
    proposals.objectness_logits = torch.zeros(len(proposals))
    with EventStorage():
        sampled = heads.label_and_sample_proposals([proposals], [targets])
    features = {f"p{i}": torch.randn(1, 64, 64 // 2 ** i, 64 // 2 ** i) for i in (2, 3, 4, 5)}
    return sampled, features


def test_shared_pooling_gives_the_upstream_mask_losses_and_the_mil_loss_of_every_bag():
    cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu",
                                    "MODEL.SHAPEPROP.MIL_NEGATIVE_FRACTION", 1.0])
    heads = build_model(cfg).roi_heads.train()
    sampled, features = sampled_training_batch(heads)
    background = int((sampled[0].gt_classes == heads.num_classes).sum())
    assert background >= 4 and len(sampled[0]) - background >= 3
    with EventStorage():
        ours = heads._forward_mask(features, sampled)
        # Detectron2's own path: foreground selection, pooling, then the mask head alone
        upstream = StandardROIHeads._forward_mask(heads, features, sampled)
    assert set(ours) == {"loss_mask", "loss_shape", "loss_mil"}
    for key in ("loss_mask", "loss_shape"):
        assert torch.allclose(ours[key], upstream[key], atol=1e-6), key
    # MIL_NEGATIVE_FRACTION 1: every sampled proposal is a bag, as pooling them all gives
    pooled = heads.mask_pooler([features[f] for f in heads.mask_in_features],
                               [sampled[0].proposal_boxes])
    every_bag = mil_loss(heads.mask_head.saliency(pooled), sampled[0].gt_mil_labels)
    assert torch.allclose(ours["loss_mil"], every_bag * cfg.MODEL.SHAPEPROP.MIL_LOSS_WEIGHT,
                          atol=1e-6)


def test_a_fraction_of_the_negative_bags_enters_the_mil_loss():
    cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu",
                                    "MODEL.SHAPEPROP.MIL_NEGATIVE_FRACTION", 0.25])
    heads = build_model(cfg).roi_heads.train()
    sampled, _ = sampled_training_batch(heads)
    background = sampled[0][sampled[0].gt_classes == heads.num_classes]
    drawn = [heads.negative_bags(sampled[0]) for _ in range(20)]
    assert {len(d) for d in drawn} == {max(1, round(0.25 * len(background)))}
    assert all((d.gt_classes == heads.num_classes).all() for d in drawn)
    assert len({tuple(d.proposal_boxes.tensor[:, 0].tolist()) for d in drawn}) > 1  # redrawn
    with pytest.raises(ValueError, match="MIL_NEGATIVE_FRACTION=0.0"):
        build_model(load_config(str(CONFIG), ["MODEL.DEVICE", "cpu",
                                              "MODEL.SHAPEPROP.MIL_NEGATIVE_FRACTION", 0.0]))


def test_sampled_proposals_carry_their_mil_bags():
    cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu"])
    heads = build_model(cfg).roi_heads
    targets = Instances((64, 64))
    targets.gt_boxes = Boxes(torch.tensor([[0.0, 0, 20, 20], [30.0, 30, 60, 60]]))
    targets.gt_classes = torch.tensor([4, 7])
    proposals = Instances((64, 64))
    proposals.proposal_boxes = Boxes(torch.tensor([[1.0, 1, 20, 20], [40.0, 0, 60, 10]]))
    proposals.objectness_logits = torch.zeros(2)
    with EventStorage():  # Detectron2's sampling logs its statistics
        sampled = heads.label_and_sample_proposals([proposals], [targets])[0]
    expected = mil_bag_labels(sampled.proposal_boxes, targets.gt_boxes, targets.gt_classes,
                              cfg.MODEL.ROI_HEADS.NUM_CLASSES, 0.5)
    assert torch.equal(sampled.gt_mil_labels, expected)
    assert expected[:, 4].sum() >= 2 and expected[:, 7].sum() >= 1  # gt boxes join the sample


def cells(*where, shape=(4, 4)):
    mask = torch.zeros(shape, dtype=torch.bool)
    for r, c in where:
        mask[r, c] = True
    return mask


def test_best_overlap_matches_a_hand_computation():
    # divided by its maximum 0.8: [[1, 1, .25, 0], [1, .5, .25, 0], 0, 0]
    probabilities = torch.zeros(1, 4, 4)
    probabilities[0, :2, :3] = torch.tensor([[0.8, 0.8, 0.2], [0.8, 0.4, 0.2]])
    gt = torch.stack([cells((0, 0), (0, 1), (0, 2), (1, 0), (1, 1)), cells((2, 2), (3, 3))])
    # theta 0.3: the 4 cells >= 0.5, all inside the first mask (5 cells): IoU 4/5
    assert analysis.best_overlap(probabilities, gt, (0.3, 0.6)).tolist() == [pytest.approx(0.8)]
    # theta 0.2 adds (0, 2) and (1, 2): 5 of 6 cells in the first mask's 5: IoU 5/6
    assert analysis.best_overlap(probabilities, gt, (0.2, 0.3, 0.6)).tolist() == [
        pytest.approx(5 / 6)]
    # the range of the values does not matter
    assert analysis.best_overlap(probabilities * 0.01, gt, (0.2,)).tolist() == [
        pytest.approx(5 / 6)]
    assert analysis.best_overlap(probabilities, gt[:0]).tolist() == [0.0]


def mapped_record():
    torch.manual_seed(0)
    instances = Instances((48, 64))
    instances.gt_boxes = Boxes(torch.tensor([[4.0, 4, 28, 30], [30.0, 10, 60, 44]]))
    instances.gt_classes = torch.tensor([2, 5])
    instances.gt_masks = BitMasks(torch.stack([
        torch.zeros(48, 64, dtype=torch.bool).index_fill_(0, torch.arange(6, 28), True)
        & (torch.arange(64) >= 6) & (torch.arange(64) < 26),
        torch.zeros(48, 64, dtype=torch.bool).index_fill_(0, torch.arange(12, 40), True)
        & (torch.arange(64) >= 34) & (torch.arange(64) < 56)]))
    return {"image": torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8), "height": 48,
            "width": 64, "instances": instances}


def test_given_box_maps_paste_every_map_inside_its_box():
    mapped = mapped_record()
    for config, maps in ((CONFIG, {"saliency", "shape", "mask"}), (BASELINE_CONFIG, {"mask"})):
        model = build_model(load_config(str(config), ["MODEL.DEVICE", "cpu"])).eval()
        out = analysis.given_box_maps(model, mapped)
        assert set(out) == maps | {"gt", "classes", "boxes"}
        for key in maps:
            assert out[key].shape == (2, 48, 64)
            assert ((out[key] >= 0) & (out[key] <= 1)).all()
            assert out[key][0, 40:, :].eq(0).all() and out[key][1, :, :20].eq(0).all()
        assert torch.equal(out["gt"], mapped["instances"].gt_masks.tensor)
    rows = analysis.overlap_by_instance(model, [mapped], classes=[5], maps=("mask",))
    assert rows["area"] == [28 * 22] and len(rows["mask"]) == 1
    summary = analysis.summarize_by_size(rows)
    assert summary["all"]["instances"] == 1 and summary["medium"]["instances"] == 0
    assert summary["small"]["mask"] == pytest.approx(rows["mask"][0], abs=1e-4)
