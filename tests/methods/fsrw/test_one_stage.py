"""The one-stage reweighting detector (thesis ch. 6, Eq. 6.1-6.3): YOLOv2's target assignment
and box decoding on hand-made examples, the head against a loop over classes, the three class
losses and the objectness/box losses against hand computations, inference scores, the stored
vectors surviving a reload, and the named config errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.modeling import build_model
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import EventStorage

from dynnet_d2.config import load_config
from dynnet_d2.methods.fsrw import ClassVectorsError, assign_targets
from dynnet_d2.methods.fsrw.benchmark import batch_1_inputs
from dynnet_d2.methods.fsrw.one_stage import decode_boxes

CONFIG = "configs/FSRW/fsrw_MobileNetV2_FPN_base_2800it_shapes.yaml"
TINY = ["FEWSHOT.SPLIT", 1, "MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", 96,
        "INPUT.MAX_SIZE_TEST", 160, "INPUT.MIN_SIZE_TRAIN", (96,), "INPUT.MAX_SIZE_TRAIN", 160,
        "MODEL.FSRW.SUPPORT_SIZE", 32, "MODEL.FSRW.META_CONV_DIMS", [16], "MODEL.DEVICE", "cpu"]
ANCHORS = torch.tensor([[8.0, 8.0], [16.0, 32.0]])


def _model(*opts):
    torch.manual_seed(0)
    return build_model(load_config(CONFIG, TINY + list(opts)))


def _logit(p):
    return math.log(p / (1 - p))


def test_each_box_goes_to_its_centre_cell_and_best_fitting_anchor_larger_box_first():
    boxes = torch.tensor([[10.0, 4, 26, 36],   # 16x32, centre (18, 20): cell (2, 2), anchor 1
                          [0.0, 0, 6, 6],      # 6x6, centre (3, 3): cell (0, 0), anchor 0
                          [1.0, 1, 5, 5]])     # 4x4 on the same slot as the 6x6: dropped
    slots, which, targets = assign_targets(boxes, ANCHORS, stride=8, grid=(4, 4))
    # slot = (anchor * H + y) * W + x
    assert slots.tolist() == [(1 * 4 + 2) * 4 + 2, 0] and which.tolist() == [0, 1]
    torch.testing.assert_close(targets, torch.tensor([
        [18 / 8 - 2, 20 / 8 - 2, math.log(16 / 16), math.log(32 / 32)],
        [3 / 8, 3 / 8, math.log(6 / 8), math.log(6 / 8)]]))
    # shape IoU of 6x6 with 8x8 is 36/64, with 16x32 36/512: anchor 0
    empty = assign_targets(torch.zeros(0, 4), ANCHORS, 8, (4, 4))
    assert [len(t) for t in empty] == [0, 0, 0]


def test_decoding_the_assigned_targets_gives_the_box_back():
    offsets = torch.zeros(2, 4, 4, 4)  # (A, 4, H, W)
    offsets[1, :, 2, 2] = torch.tensor([_logit(0.25), _logit(0.5), 0.0, 0.0])
    offsets[0, :, 0, 0] = torch.tensor([_logit(3 / 8), _logit(3 / 8), math.log(6 / 8),
                                        math.log(6 / 8)])
    boxes = decode_boxes(offsets, ANCHORS, stride=8)
    assert boxes.shape == (2, 4, 4, 4)
    torch.testing.assert_close(boxes[1, 2, 2], torch.tensor([10.0, 4, 26, 36]))
    torch.testing.assert_close(boxes[0, 0, 0], torch.tensor([0.0, 0, 6, 6]))
    # an untouched slot: the anchor centred in its cell
    torch.testing.assert_close(boxes[0, 3, 1], torch.tensor([8.0, 24, 16, 32]))


def test_head_predicts_each_class_from_its_reweighted_meta_features_forward_and_backward():
    head = _model("MODEL.FSRW.CLASS_SCORER", "shared").head  # the thesis' one scorer
    feature = torch.randn(2, 64, 3, 5, requires_grad=True)
    vectors = torch.randn(4, 16, requires_grad=True)
    head.episode_vectors = vectors
    out = head([feature])
    assert out.shape == (2, 4, 5, 6, 3, 5)
    meta = head.meta_features(feature)
    loop = torch.stack([head.predictor(meta * w[None, :, None, None]).view(2, 5, 6, 3, 5)
                        for w in vectors], dim=1)
    torch.testing.assert_close(out, loop)
    grads = torch.autograd.grad(out.square().sum(), (feature, vectors))
    expected = torch.autograd.grad(loop.square().sum(), (feature, vectors))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def _one_box_batch(model, box, cls, size=(64, 64)):
    instances = Instances(size)
    instances.gt_boxes = Boxes(torch.tensor([box]))
    instances.gt_classes = torch.tensor([cls])
    return ImageList(torch.zeros(1, 3, *size), [size]), [instances]


@pytest.mark.parametrize("loss", ["softmax", "multi_binary"])
def test_losses_of_one_box_against_hand_computations(loss):
    model = _model("MODEL.FSRW.LOSS", loss, "MODEL.FSRW.NEGATIVES_PER_POSITIVE", 0.0)
    stride, num = model.stride, 3
    model._episode_classes = torch.arange(num)
    torch.manual_seed(1)
    predictions = torch.randn(1, num, 5, 6, 4, 4)  # (B, N, A, 6, H, W)
    # a 40x40 box of class 2 centred at (20, 36): cell (1, 2) at stride 16, anchor 1 (38x38)
    images, gt = _one_box_batch(model, [0.0, 16, 40, 56], 2)
    losses = model.forward_training(images, None, predictions, gt)
    o, tx, ty, tw, th, c = predictions[0, :, 1, :, 2, 1].unbind(1)  # (N,) each
    assert stride == 16
    torch.testing.assert_close(losses["loss_obj"], F.softplus(-o[2]))  # -log sigmoid(o_2)
    expected_box = ((torch.sigmoid(tx[2]) - (20 / 16 - 1)) ** 2
                    + (torch.sigmoid(ty[2]) - (36 / 16 - 2)) ** 2
                    + (tw[2] - math.log(40 / 38)) ** 2 + (th[2] - math.log(40 / 38)) ** 2)
    torch.testing.assert_close(losses["loss_box"], expected_box)
    if loss == "softmax":  # Eq. 6.3
        expected_cls = -torch.log_softmax(c, dim=0)[2]
    else:
        expected_cls = sum(F.binary_cross_entropy_with_logits(c[i], torch.tensor(float(i == 2)))
                           for i in range(num))
    torch.testing.assert_close(losses["loss_cls"], expected_cls)


def test_single_binary_scores_the_one_support_class_against_each_box():
    model = _model("MODEL.FSRW.LOSS", "single_binary", "MODEL.FSRW.NEGATIVES_PER_POSITIVE", 0.0)
    model._episode_classes = torch.tensor([0])  # the support showed class 0; the box is class 2
    predictions = torch.randn(1, 1, 5, 6, 4, 4)
    images, gt = _one_box_batch(model, [0.0, 16, 40, 56], 2)
    losses = model.forward_training(images, None, predictions, gt)
    c = predictions[0, 0, 1, 5, 2, 1]
    torch.testing.assert_close(losses["loss_cls"], F.softplus(c))  # -log(1 - sigmoid(c))
    # class 0's prediction has no box of its class: no positive, no box loss
    assert losses["loss_box"].item() == 0.0


def test_negatives_are_sampled_per_positive_and_never_overlap_their_class():
    # IGNORE_IOU 0: no prediction of class 0 overlapping its image-sized box is a negative
    model = _model("MODEL.FSRW.NEGATIVES_PER_POSITIVE", 3.0, "MODEL.FSRW.IGNORE_IOU", 0.0)
    model._episode_classes = torch.arange(2)
    predictions = torch.zeros(1, 2, 5, 6, 4, 4)
    predictions[0, 0, :, 0] = -50.0  # class 0's objectness: its positive costs 50
    predictions[0, 1, :, 0] = 2.0  # class 1's: each negative costs softplus(2)
    images, gt = _one_box_batch(model, [0.0, 0, 64, 64], 0)
    losses = model.forward_training(images, None, predictions, gt)
    torch.testing.assert_close(losses["loss_obj"],
                               (50.0 + 3 * F.softplus(torch.tensor(2.0))) / 4)


def test_inference_scores_are_objectness_times_the_softmax_across_classes():
    model = _model("MODEL.FSRW.SCORE_THRESH_TEST", 0.3).eval()
    predictions = torch.full((1, 3, 5, 6, 4, 4), -20.0)
    predictions[:, :, :, 1:5] = 0.0
    predictions[0, :, 1, 5, 2, 1] = torch.tensor([0.0, math.log(3.0), 0.0])  # softmax .2 .6 .2
    predictions[0, 1, 1, 0, 2, 1] = 20.0  # objectness ~1 for class 1 at that slot
    images = ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)])
    (result,) = model.forward_inference(images, None, predictions)
    assert result.pred_classes.tolist() == [1]
    torch.testing.assert_close(result.scores, torch.tensor([0.6]))
    # anchor 1 (38x38) centred in cell (1, 2): (16 + 8, 32 + 8)
    torch.testing.assert_close(result.pred_boxes.tensor, torch.tensor([[5.0, 21, 43, 59]]))


def test_prediction_module_starts_as_detectron2s_dense_heads_and_meta_convs_as_darknets():
    """N(0, 0.01) weights and zero bias for the prediction module P (He-initialised, its box and
    objectness outputs started large and wiped the class information out of the features), He
    (fan-out) for the meta features' convolutions."""
    head = _model("MODEL.FSRW.META_CONV_DIMS", [64]).head
    assert abs(float(head.predictor.weight.detach().std()) - 0.01) < 0.001
    assert float(head.predictor.bias.detach().abs().max()) == 0
    conv = head.meta_features[0]
    he_std = math.sqrt(2 / (conv.out_channels * 3 * 3))
    assert abs(float(conv.weight.detach().std()) / he_std - 1) < 0.05


def test_a_training_step_trains_the_reweighter_and_stored_vectors_survive_a_reload():
    every = ["MODEL.FSRW.MEAN_SUPPORTS_PER_CLASS", 2, "MODEL.FSRW.SCORE_THRESH_TEST", 0.0]
    model = _model(*every)
    cfg = load_config(CONFIG, TINY)
    model.train()
    with EventStorage(3):
        losses = model([DatasetMapper(cfg, True)(DatasetCatalog.get("shapes_train_base1")[0])])
    assert set(losses) == {"loss_obj", "loss_box", "loss_cls"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.reweighter.parameters())
    assert model.head.episode_vectors is None
    model.eval()  # stores the mean vectors of the current weights
    detections = model(batch_1_inputs(1, 1))[0]["instances"]
    assert len(detections) == 50  # TEST.DETECTIONS_PER_IMAGE
    reloaded = _model(*every).eval()
    with pytest.raises(ClassVectorsError, match="no stored class vectors"):
        reloaded(batch_1_inputs(1, 1))
    reloaded.load_state_dict(model.state_dict())
    again = reloaded(batch_1_inputs(1, 1))[0]["instances"]
    torch.testing.assert_close(again.pred_boxes.tensor, detections.pred_boxes.tensor)
    torch.testing.assert_close(again.scores, detections.scores)


@pytest.mark.parametrize("opts,message", [
    (["MODEL.FSRW.IN_FEATURE", "res9"], r"MODEL.FSRW.IN_FEATURE='res9': the backbone "
                                        r"build_mobilenet_v2_fpn_backbone gives \['p2'"),
    (["MODEL.FSRW.ANCHORS", [[8, 0]]], r"MODEL.FSRW.ANCHORS=\[\[8.0, 0.0\]\]: expected"),
    (["MODEL.FSRW.LOSS", "hinge"], "MODEL.FSRW.LOSS='hinge': expected one of"),
    (["MODEL.FSRW.REWEIGHTED_CHANNELS", 17], r"REWEIGHTED_CHANNELS=17: expected 1..16"),
])
def test_config_errors_name_the_key(opts, message):
    with pytest.raises(ValueError, match=message):
        _model(*opts)


def test_per_class_scorer_scores_each_class_with_its_own_rows_on_its_features():
    from dynnet_d2.methods.fsrw.one_stage import ReweightedYOLOHead

    torch.manual_seed(0)
    head = ReweightedYOLOHead(in_channels=8, conv_dims=[6], num_anchors=2, num_classes=3,
                              reweighted_channels=-1, class_scorer="per_class")
    assert head.predictor.out_channels == 2 * 5 and head.class_score.out_features == 3 * 2
    feature = torch.randn(1, 8, 4, 5)
    head.episode_vectors, head.episode_classes = torch.rand(2, 6), torch.tensor([2, 0])
    out = head([feature])
    assert out.shape == (1, 2, 2, 6, 4, 5)
    meta = head.meta_features(feature)
    for column, cls in enumerate((2, 0)):  # column j scores episode class j with its rows
        reweighted = meta * head.episode_vectors[column][None, :, None, None]
        for anchor in range(2):
            row = cls * 2 + anchor
            expected = torch.einsum("bmhw,m->bhw", reweighted, head.class_score.weight[row]) \
                + head.class_score.bias[row]
            torch.testing.assert_close(out[:, column, anchor, 5], expected)
        shared = head.predictor(reweighted).view(1, 2, 5, 4, 5)
        torch.testing.assert_close(out[:, column, :, :5], shared)
    out.sum().backward()
    assert head.class_score.weight.grad[[0, 1, 4, 5]].abs().sum(1).gt(0).all()
    assert head.class_score.weight.grad[[2, 3]].abs().sum() == 0  # class 1 not in the episode


def test_phase_2_from_a_checkpoint_with_other_class_rows_names_the_surgery(tmp_path):
    """The one-stage detector declares its per-class rows as its predictor: a K-shot fine-tuning
    from a phase-1 checkpoint of 2 classes into 3 is refused, naming the rows and
    surgery.phase_2_start; the shared scorer has nothing that must fit."""
    from dynnet_d2.engine.checkpoint import (
        CheckpointMismatchError,
        DynnetCheckpointer,
        load_strictly,
        predictor_checks,
    )

    path = tmp_path / "phase1.pth"
    torch.save({"model": _model("MODEL.FSRW.NUM_CLASSES", 2).state_dict()}, path)
    phase_2 = ["MODEL.FSRW.NUM_CLASSES", 3, "FEWSHOT.SHOT", 1, "FEWSHOT.SEED", 0]
    cfg = load_config(CONFIG, TINY + phase_2)
    checks = predictor_checks(cfg)
    assert checks["predictor_must_fit"] and checks["predictor_prefix"] == "head.class_score."
    with pytest.raises(CheckpointMismatchError, match=r"head.class_score.weight \(checkpoint "
                                                      r"\(10, 16\), model \(15, 16\)\).*"
                                                      r"phase_2_start"):
        DynnetCheckpointer(build_model(cfg), **checks).load(str(path))
    shared = load_config(CONFIG, TINY + phase_2 + ["MODEL.FSRW.CLASS_SCORER", "shared"])
    assert not predictor_checks(shared)["predictor_must_fit"]
    # evaluation loads strictly: per-class rows the shared-scorer model lacks are named
    per_class = tmp_path / "per_class.pth"
    torch.save({"model": _model("MODEL.FSRW.NUM_CLASSES", 3).state_dict()}, per_class)
    with pytest.raises(CheckpointMismatchError, match=r"head\.class_score\.weight"):
        load_strictly(build_model(shared), shared, str(per_class))
