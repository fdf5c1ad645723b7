"""FSRW's two phases end to end with the shipped configs on the tiny data: phase 1 on the base
classes, phase 2 on a K-shot set from phase 1's weights (the two-stage detector's per-class
predictor given rows for every class first), evaluated with bAP/nAP;
``--eval-only`` of the fine-tuned checkpoint gives the same results from its stored vectors; the
sweep plans ``meta_rcnn`` from its own base; class vectors recomputed from other supports."""
import argparse
import json

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog

from dynnet_d2.config import load_config
from dynnet_d2.engine import DynnetTrainer
from dynnet_d2.engine.fewshot_methods import FEWSHOT_METHODS, fewshot_base
from dynnet_d2.experiments.sweep.cli import parse_and_check
from dynnet_d2.methods.fsrw import SupportSource
from dynnet_d2.methods.fsrw.class_vectors import class_key
from dynnet_d2.methods.fsrw.pipeline import recompute_class_vectors
from dynnet_d2.methods.fsrw.surgery import phase_2_start
from dynnet_d2.methods.fsrw.sweep import (
    ONE_STAGE_BASE,
    TWO_STAGE_BASE,
    check_phase_1_checkpoint,
)

PHASE1 = "configs/FSRW/meta_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"
PHASE2 = "configs/FSRW/meta_rcnn_MobileNetV2_FPN_ft_all_100itxK_shapes.yaml"
ONE_STAGE = ("configs/FSRW/fsrw_MobileNetV2_FPN_base_2800it_shapes.yaml",
             "configs/FSRW/fsrw_MobileNetV2_FPN_ft_all_100itxK_shapes.yaml")
TINY = ["FEWSHOT.SPLIT", 1, "SOLVER.IMS_PER_BATCH", 2, "SOLVER.WARMUP_ITERS", 0,
        "SOLVER.STEPS", (), "DATALOADER.NUM_WORKERS", 0, "INPUT.MIN_SIZE_TRAIN", (96,),
        "INPUT.MAX_SIZE_TRAIN", 160, "INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 160,
        "MODEL.FSRW.SUPPORT_SIZE", 32, "MODEL.FSRW.MEAN_SUPPORTS_PER_CLASS", 2, "SEED", 1,
        "MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
        "MODEL.FSRW.SCORE_THRESH_TEST", 0.0]


def _train(config, *opts):
    cfg = load_config(config, TINY + list(opts))
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    return cfg, trainer.train()


@pytest.mark.parametrize("phase1,phase2", [ONE_STAGE, (PHASE1, PHASE2)],
                         ids=["one_stage", "two_stage"])
def test_phase_1_then_phase_2_train_and_evaluate_and_eval_only_repeats_it(tmp_path, phase1,
                                                                          phase2):
    _, base = _train(phase1, "SOLVER.MAX_ITER", 3, "OUTPUT_DIR", str(tmp_path / "phase1"),
                     "MODEL.WEIGHTS", "")
    assert {"AP", "bAP"} <= set(base["bbox"])
    start = phase_2_start(str(tmp_path / "phase1" / "model_final.pth"), "shapes_train_base1",
                          "shapes_test_all1")  # as the sweep starts phase 2
    cfg, fine_tuned = _train(phase2, "FEWSHOT.SHOT", 1, "FEWSHOT.SEED", 0,
                             "SOLVER.MAX_ITER", 2, "OUTPUT_DIR", str(tmp_path / "phase2"),
                             "MODEL.WEIGHTS", start)
    assert {"AP", "bAP", "nAP"} <= set(fine_tuned["bbox"])
    saved = json.loads((tmp_path / "phase2" / "inference" / "results.json").read_text())
    headline = ("AP", "AP50", "bAP", "nAP")
    assert [saved["bbox"][k] for k in headline] == [fine_tuned["bbox"][k] for k in headline]
    again = DynnetTrainer.evaluate_checkpoint(load_config(phase2, TINY + [
        "FEWSHOT.SHOT", 1, "OUTPUT_DIR", str(tmp_path / "eval"),
        "MODEL.WEIGHTS", str(tmp_path / "phase2" / "model_final.pth")]))
    assert [again["bbox"][k] for k in headline] == [fine_tuned["bbox"][k] for k in headline]


def test_the_sweep_runs_each_detector_from_its_own_phase_1_base(tmp_path):
    plan = parse_and_check(argparse.ArgumentParser(), [
        "--sweep-dir", str(tmp_path / "s"), "--shots", "1", "--seeds", "0",
        "--methods", "fsrw", "meta_rcnn", "cos"])
    bases = {run.method.name: run.method.base for run in plan.runs}
    assert bases == {"fsrw": ONE_STAGE_BASE, "meta_rcnn": TWO_STAGE_BASE, "cos": "default"}
    assert fewshot_base(ONE_STAGE_BASE).config.endswith(ONE_STAGE[0])
    assert fewshot_base(TWO_STAGE_BASE).config.endswith(PHASE1)
    torch.save({"model": {"roi_heads.box_predictor.cls_score.weight": torch.zeros(16, 4)}},
               tmp_path / "tfa.pth")
    with pytest.raises(ValueError, match="not a phase-1 model of a reweighting detector.*"
                                         "'class_vectors.key'"):
        check_phase_1_checkpoint(str(tmp_path / "tfa.pth"), "shapes_train_base1", "x.pth",
                                 "split 1")


def test_class_vectors_recomputed_from_other_supports_go_into_a_new_checkpoint(tmp_path):
    opts = TINY + ["FEWSHOT.SHOT", 1, "FEWSHOT.SEED", 0]
    model = DynnetTrainer.build_model(load_config(PHASE2, opts)).eval()
    DetectionCheckpointer(model, str(tmp_path)).save("trained")
    cfg = load_config(PHASE2, opts + ["MODEL.WEIGHTS", str(tmp_path / "trained.pth")])
    other = "shapes_train_all1_1shot_seed1"
    vectors = recompute_class_vectors(cfg, [other], str(tmp_path / "other.pth"))
    expected = model.compute_class_vectors(SupportSource([other], "RGB"))
    torch.testing.assert_close(vectors, expected)
    state = torch.load(tmp_path / "other.pth", weights_only=True)["model"]
    torch.testing.assert_close(state["roi_heads.box_predictor.class_vectors.vectors"], expected)
    assert int(state["roi_heads.box_predictor.class_vectors.key"]) == class_key(
        MetadataCatalog.get("shapes_test_all1").thing_classes)
    with pytest.raises(KeyError, match="shapes_train_all1_1shot_seed99"):
        recompute_class_vectors(cfg, ["shapes_train_all1_1shot_seed99"], str(tmp_path / "x.pth"))
    with pytest.raises(ValueError, match="15 classes; this model detects 20"):
        recompute_class_vectors(cfg, ["shapes_train_base1"], str(tmp_path / "x.pth"))
    assert not (tmp_path / "x.pth").exists()


FSRW_METHODS = [m for m in FEWSHOT_METHODS if FEWSHOT_METHODS[m].base.startswith("fsrw_")]
# keys phase 1 and phase 2 may set differently: the classes, and how many supports are averaged
PER_PHASE = {"NUM_CLASSES", "MEAN_SUPPORTS_PER_CLASS"}


def test_both_detectors_and_their_ablations_are_sweep_methods():
    assert {"fsrw", "fsrw_singlebinary", "fsrw_multibinary", "fsrw_p3", "fsrw_p5", "fsrw_half",
            "fsrw_backbone", "meta_rcnn", "meta_rcnn_image", "meta_rcnn_imageobject",
            "meta_rcnn_imagemaskobject", "meta_rcnn_half"} == set(FSRW_METHODS)


@pytest.mark.parametrize("name", FSRW_METHODS)
def test_every_variant_fine_tunes_its_own_phase_1_with_the_same_fsrw_keys(name):
    method = FEWSHOT_METHODS[name]
    split = ["FEWSHOT.SPLIT", 1]
    base = load_config(fewshot_base(method.base).config, split)
    fine_tune = load_config(method.config, split + ["FEWSHOT.SHOT", 1])
    assert fine_tune.MODEL.WEIGHTS == f"{base.OUTPUT_DIR}/model_final.pth"
    assert fine_tune.MODEL.META_ARCHITECTURE == base.MODEL.META_ARCHITECTURE
    for key, value in base.MODEL.FSRW.items():
        if key not in PER_PHASE:
            assert fine_tune.MODEL.FSRW[key] == value, key
    others = [FEWSHOT_METHODS[m] for m in FSRW_METHODS if m != name]
    assert base.OUTPUT_DIR not in {load_config(fewshot_base(m.base).config, split).OUTPUT_DIR
                                   for m in others}


def test_the_per_class_predictor_starts_phase_2_from_rows_fitted_by_class_name(tmp_path):
    from dynnet_d2.engine.checkpoint import CheckpointMismatchError

    per_class = ["MODEL.FSRW.CLASS_SCORER", "per_class"]
    _train(PHASE1, "SOLVER.MAX_ITER", 2, "OUTPUT_DIR", str(tmp_path / "phase1"), "MODEL.WEIGHTS",
           "", *per_class)
    phase1 = str(tmp_path / "phase1" / "model_final.pth")
    fine_tune = ["FEWSHOT.SHOT", 1, "FEWSHOT.SEED", 0, "SOLVER.MAX_ITER", 1, *per_class]
    with pytest.raises(CheckpointMismatchError, match=r"cls_score.weight.*surgery.phase_2_start"):
        _train(PHASE2, *fine_tune, "OUTPUT_DIR", str(tmp_path / "unfitted"), "MODEL.WEIGHTS",
               phase1)
    start = phase_2_start(phase1, "shapes_train_base1", "shapes_test_all1")
    assert start.endswith("model_per_class_shapes_test_all1.pth")
    assert phase_2_start(phase1, "shapes_train_base1", "shapes_test_all1") == start  # once
    _, results = _train(PHASE2, *fine_tune, "OUTPUT_DIR", str(tmp_path / "phase2"),
                        "MODEL.WEIGHTS", start)
    assert {"bAP", "nAP"} <= set(results["bbox"])
    shared = str(tmp_path / "shared.pth")
    torch.save({"model": {"roi_heads.box_predictor.cls_score.weight": torch.zeros(1, 4)}}, shared)
    assert phase_2_start(shared, "shapes_train_base1", "shapes_test_all1") == shared
