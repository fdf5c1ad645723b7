"""The two-stage reweighting detector (thesis ch. 6, Meta R-CNN style): the predictor against a
loop over classes, stored class vectors = the mean of the support branch on the K shots, the
same detections after a reload, phase 2 loading phase 1's weights, and the named errors."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from dynnet_d2.config import load_config
from dynnet_d2.engine import DynnetCheckpointer, DynnetTrainer
from dynnet_d2.methods.fsrw import ClassVectorsError, SupportSource
from dynnet_d2.methods.fsrw.benchmark import batch_1_inputs

CONFIG = "configs/FSRW/meta_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"
TINY = ["FEWSHOT.SPLIT", 1, "MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", 96,
        "INPUT.MAX_SIZE_TEST", 160, "MODEL.FSRW.SUPPORT_SIZE", 32, "MODEL.DEVICE", "cpu"]


def _model(*opts):
    torch.manual_seed(0)
    return build_model(load_config(CONFIG, TINY + list(opts)))


def test_predictor_scores_each_class_on_its_reweighted_feature():
    predictor = _model("MODEL.FSRW.CLASS_SCORER", "shared").roi_heads.box_predictor
    x = torch.randn(6, predictor.cls_score.in_features)
    vectors = torch.randn(predictor.num_classes, predictor.reweighted_channels)
    predictor.episode_vectors = vectors
    scores, deltas = predictor(x)
    assert scores.shape == (6, 16) and deltas.shape == (6, 4 * 15)
    for i, w in enumerate(vectors):
        torch.testing.assert_close(scores[:, i], predictor.cls_score(x * w)[:, 0])
        torch.testing.assert_close(deltas[:, 4 * i:4 * i + 4], predictor.bbox_pred(x * w))
    torch.testing.assert_close(scores[:, 15], predictor.background_score(x)[:, 0])


def test_per_class_scorer_runs_the_predictor_on_every_reweighted_feature_and_keeps_its_class():
    predictor = _model("MODEL.FSRW.CLASS_SCORER", "per_class").roi_heads.box_predictor
    assert predictor.cls_score.out_features == 15 and predictor.bbox_pred.out_features == 60
    x = torch.randn(6, predictor.cls_score.in_features)
    vectors = torch.randn(15, predictor.reweighted_channels)
    predictor.episode_vectors = vectors
    scores, deltas = predictor(x)
    assert scores.shape == (6, 16) and deltas.shape == (6, 60)
    for i, w in enumerate(vectors):  # Meta R-CNN: the (N + 1)-way predictor on F_i, output i
        torch.testing.assert_close(scores[:, i], predictor.cls_score(x * w)[:, i])
        torch.testing.assert_close(deltas[:, 4 * i:4 * i + 4],
                                   predictor.bbox_pred(x * w)[:, 4 * i:4 * i + 4])
    torch.testing.assert_close(scores[:, 15], predictor.background_score(x)[:, 0])
    sum(scores.sum() for scores in (scores, deltas)).backward()
    assert predictor.cls_score.weight.grad.abs().sum(1).gt(0).all()  # every class's row learns
    with pytest.raises(ValueError, match="CLASS_SCORER='both'"):
        _model("MODEL.FSRW.CLASS_SCORER", "both")


def test_half_of_the_channels_reweighted():
    predictor = _model("MODEL.FSRW.REWEIGHTED_CHANNELS", 128).roi_heads.box_predictor
    x = torch.randn(3, 256)
    predictor.episode_vectors = torch.randn(15, 128)
    scores, _ = predictor(x)
    w = torch.cat([predictor.episode_vectors[4], torch.ones(128)])
    torch.testing.assert_close(scores[:, 4], predictor.cls_score(x * w)[:, 4])


def test_stored_vectors_are_the_support_branchs_mean_over_the_k_shots_and_survive_a_reload():
    model = _model().eval()
    with pytest.raises(ClassVectorsError, match="inference: this model has no stored class "
                                                "vectors.*tools/fsrw_class_vectors.py"):
        model(batch_1_inputs(1, 1))
    # a support set of at most 2 instances per base class (K shots): the vectors are the
    # means of the support branch over exactly those
    shots = SupportSource(["shapes_train_base1"], "RGB")
    shots.pool.instances = [found[:2] for found in shots.pool.instances]
    vectors = model.compute_class_vectors(shots)
    expected = torch.stack([model.reweighter(model.support_tensors(found)).mean(0)
                            for found in shots.pool.instances])
    torch.testing.assert_close(vectors, expected)
    detections = model(batch_1_inputs(1, 1))[0]["instances"]

    reloaded = _model().eval()
    reloaded.load_state_dict(model.state_dict())
    reloaded.class_vectors.check_class_names(shots.pool.class_names, "reloaded")
    again = reloaded(batch_1_inputs(1, 1))[0]["instances"]
    torch.testing.assert_close(again.pred_boxes.tensor, detections.pred_boxes.tensor)
    torch.testing.assert_close(again.scores, detections.scores)
    with pytest.raises(ClassVectorsError, match=r"shapes_test_all1: the stored class vectors "
                                                r"are of other classes than \['circle'"):
        reloaded.class_vectors.check_class_names(
            MetadataCatalog.get("shapes_test_all1").thing_classes, "shapes_test_all1")


def test_training_draws_the_episode_and_evaluation_stores_fresh_vectors():
    model = _model("MODEL.FSRW.META_LOSS_WEIGHT", 0.5, "INPUT.MIN_SIZE_TRAIN", (96,),
                   "INPUT.MAX_SIZE_TRAIN", 160)
    record = DatasetCatalog.get("shapes_train_base1")[0]
    from detectron2.data import DatasetMapper
    mapper = DatasetMapper(load_config(CONFIG, TINY + ["INPUT.MIN_SIZE_TRAIN", (96,),
                                                       "INPUT.MAX_SIZE_TRAIN", 160]), True)
    model.train()
    with EventStorage(7):
        losses = model([mapper(record)])
        episode = model.supports.pool.episode(model.seed, 7)
        vectors = model.reweighter(model.support_tensors(episode))
    meta = 0.5 * F.cross_entropy(model.meta_classifier(vectors), torch.arange(15))
    torch.testing.assert_close(losses["loss_meta"], meta)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.reweighter.parameters())
    assert model.roi_heads.box_predictor.episode_vectors is None
    model.eval()  # after a training step: the vectors are computed from the supports
    model.class_vectors.check_class_names(
        MetadataCatalog.get("shapes_train_base1").thing_classes, "after training")


def test_phase_2_loads_phase_1_weights_with_vectors_of_fewer_classes(tmp_path):
    """(the shared scorer: no row of the predictor is per class)"""
    phase1 = _model("MODEL.FSRW.CLASS_SCORER", "shared").eval()
    phase1.compute_class_vectors()
    phase2 = build_model(load_config(CONFIG, TINY + ["MODEL.FSRW.CLASS_SCORER", "shared",
                                                     "MODEL.ROI_HEADS.NUM_CLASSES", 20,
                                                     "DATASETS.TRAIN",
                                                     ("shapes_train_all1_1shot_seed0",)]))
    DetectionCheckpointer(phase1, str(tmp_path)).save("phase1")
    DynnetCheckpointer(phase2).load(str(tmp_path / "phase1.pth"))  # as training loads
    torch.testing.assert_close(phase2.roi_heads.box_predictor.cls_score.weight,
                               phase1.roi_heads.box_predictor.cls_score.weight)
    with pytest.raises(ClassVectorsError, match="no stored class vectors"):
        phase2.eval()(batch_1_inputs(1, 1))
    phase2.compute_class_vectors()
    assert phase2.class_vectors.vectors.shape == (20, 256)


def test_a_predictor_of_another_kind_or_another_class_loss_is_named():
    with pytest.raises(ValueError, match="ReweightingRCNN needs MODEL.ROI_HEADS.NAME "
                                         "'ReweightingROIHeads'"):
        _model("MODEL.ROI_HEADS.NAME", "StandardROIHeads")
    with pytest.raises(ValueError, match="MODEL.FSRW.LOSS='multi_binary': the two-stage"):
        _model("MODEL.FSRW.LOSS", "multi_binary")


def test_evaluation_checks_the_class_vectors_against_each_test_set(tmp_path):
    cfg = load_config(CONFIG, TINY + ["DATASETS.TEST", ("shapes_test_base1", "shapes_test_all1"),
                                      "OUTPUT_DIR", str(tmp_path)])
    model = build_model(cfg).eval()
    with pytest.raises(ClassVectorsError, match="shapes_test_base1: this model has no stored "
                                                "class vectors"):
        DynnetTrainer.test(cfg, model)
    model.compute_class_vectors()  # of the 15 base classes: not those of shapes_test_all1
    with pytest.raises(ClassVectorsError, match="shapes_test_all1: the stored class vectors are "
                                                "of other classes"):
        DynnetTrainer.test(cfg, model)


def test_per_class_predictor_rows_copied_by_class_name_and_novel_rows_drawn():
    from dynnet_d2.methods.fsrw.surgery import fit_per_class_predictor

    key = "roi_heads.box_predictor."
    state = {f"{key}cls_score.weight": torch.tensor([[1.0, 1.0], [2.0, 2.0]]),
             f"{key}cls_score.bias": torch.tensor([0.1, 0.2]),
             f"{key}bbox_pred.weight": torch.arange(16.0).view(8, 2),
             f"{key}bbox_pred.bias": torch.arange(8.0), "backbone.x": torch.ones(1),
             f"{key}class_vectors.vectors": torch.ones(2, 3)}
    out = fit_per_class_predictor(state, ["a", "b"], ["c", "b", "a"])
    weight, bias = out[f"{key}cls_score.weight"], out[f"{key}cls_score.bias"]
    assert weight[1:].tolist() == [[2.0, 2.0], [1.0, 1.0]]
    assert torch.equal(bias[1:], state[f"{key}cls_score.bias"].flip(0))
    assert bias[0] == 0 and 0 < weight[0].abs().max() < 0.1  # the novel class: N(0, 0.01)
    boxes = out[f"{key}bbox_pred.weight"]
    assert torch.equal(boxes[4:8], state[f"{key}bbox_pred.weight"][4:8])  # b's 4 rows
    assert torch.equal(boxes[8:12], state[f"{key}bbox_pred.weight"][0:4])  # a's 4 rows
    assert out["backbone.x"] is state["backbone.x"]
    assert f"{key}class_vectors.vectors" not in out  # phase 2 computes its own
    assert state[f"{key}cls_score.weight"].shape[0] == 2  # the input is not changed
    with pytest.raises(ValueError, match="cls_score.weight has 2 rows, expected 1 per class of "
                                         "the 3 base classes"):
        fit_per_class_predictor(state, ["a", "b", "c"], ["a", "b", "c", "d"])


def test_one_stage_per_class_rows_are_fitted_anchor_block_by_class_block():
    from dynnet_d2.methods.fsrw.surgery import fit_per_class_predictor, per_class_layers

    state = {"head.class_score.weight": torch.arange(8.0).view(4, 2),  # 2 classes x 2 anchors
             "head.class_score.bias": torch.tensor([1.0, 2.0, 3.0, 4.0]),
             "head.class_vectors.vectors": torch.ones(2, 2)}
    assert per_class_layers(state, 2) == {"head.class_score": 2}
    out = fit_per_class_predictor(state, ["a", "b"], ["b", "new", "a"])
    weight = out["head.class_score.weight"]
    assert torch.equal(weight[0:2], state["head.class_score.weight"][2:4])  # b's anchors
    assert torch.equal(weight[4:6], state["head.class_score.weight"][0:2])  # a's anchors
    assert out["head.class_score.bias"].tolist() == [3.0, 4.0, 0.0, 0.0, 1.0, 2.0]
    assert "head.class_vectors.vectors" not in out
    assert per_class_layers({"roi_heads.box_predictor.cls_score.weight": torch.zeros(1, 4)},
                            2) == {}  # the shared scorer
