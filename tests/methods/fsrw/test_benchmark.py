"""FSRW's benchmark pieces on tiny runs: the learning curve read from metrics.json, the missing
phase-1 model named with the command that trains it, the class-vector figures from a fine-tuned
one-stage detector (one vector per instance of its K-shot set), and the inference timing at N
classes."""
import json

import pytest

from dynnet_d2.config import load_config
from dynnet_d2.engine import DynnetTrainer
from dynnet_d2.methods.fsrw import benchmark

ONE_STAGE = "configs/FSRW/fsrw_MobileNetV2_FPN_ft_all_100itxK_shapes.yaml"
TINY = ["FEWSHOT.SPLIT", 1, "FEWSHOT.SHOT", 1, "FEWSHOT.SEED", 0, "SOLVER.IMS_PER_BATCH", 2,
        "SOLVER.MAX_ITER", 1, "SOLVER.STEPS", (), "DATALOADER.NUM_WORKERS", 0,
        "INPUT.MIN_SIZE_TRAIN", (96,), "INPUT.MAX_SIZE_TRAIN", 160, "INPUT.MIN_SIZE_TEST", 96,
        "INPUT.MAX_SIZE_TEST", 160, "MODEL.FSRW.SUPPORT_SIZE", 32, "MODEL.WEIGHTS", "",
        "DATASETS.TEST", (), "MODEL.DEVICE", "cpu"]


def _evaluation(prefix, n, b, ap):
    return {f"{prefix}bbox/nAP50": n, f"{prefix}bbox/bAP50": b, f"{prefix}bbox/AP": ap}


def test_learning_curves_per_test_set_and_the_iteration_validation_chooses(tmp_path):
    rows = [{"iteration": 49, "time": 0.1, "total_loss": 1.0},
            {"iteration": 99, **_evaluation("val/", 10.0, 70.0, 30.0),
             **_evaluation("test/", 11.0, 71.0, 31.0)},
            {"iteration": 199, **_evaluation("val/", 20.5, 69.0, 31.0),
             **_evaluation("test/", 9.0, 68.0, 29.0)},
            {"iteration": 299, **_evaluation("val/", 20.5, 68.0, 30.0),
             **_evaluation("test/", 30.0, 68.0, 29.0)},
            # Detectron2's evaluation after training, stored at MAX_ITER
            {"iteration": 400, **_evaluation("val/", 1.0, 1.0, 1.0),
             **_evaluation("test/", 2.0, 2.0, 2.0)}]
    (tmp_path / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "config.yaml").write_text("SOLVER:\n  MAX_ITER: 400\n")
    curves = benchmark.learning_curve(tmp_path)
    assert curves["val"][:2] == [{"iteration": 100, "nAP50": 10.0, "bAP50": 70.0, "AP": 30.0},
                                 {"iteration": 200, "nAP50": 20.5, "bAP50": 69.0, "AP": 31.0}]
    assert [(p["iteration"], p["nAP50"]) for p in curves["test"]] == [
        (100, 11.0), (200, 9.0), (300, 30.0), (400, 2.0)]
    # the validation curve chooses (the earliest of equal ones); the test curve's 30.0 does not
    assert benchmark.best_iteration(curves["val"])["iteration"] == 200
    (tmp_path / "config.yaml").write_text("SOLVER:\n  MAX_ITER: 10\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"iteration": 9, **_evaluation("", 1.0,
                                                                                     2.0, 3.0)}))
    assert benchmark.learning_curve(tmp_path) == {"test": [{"iteration": 10, "nAP50": 1.0,
                                                            "bAP50": 2.0, "AP": 3.0}]}


def test_the_learning_speed_figure_has_a_panel_per_evaluated_set(tmp_path):
    from PIL import Image

    from dynnet_d2.methods.fsrw.analysis import plot_learning_curves

    point = {"iteration": 100, "nAP50": 1.0}
    for sets, width in ((("val", "test"), 2 * 5 * 120), (("test",), 5 * 120)):
        path = tmp_path / f"{len(sets)}.png"
        plot_learning_curves({"a": {s: [point] for s in sets}, "b": {sets[0]: [point]}},
                             str(path), "title")
        assert Image.open(path).size[0] == width


def test_a_missing_phase_1_model_names_the_sweep_that_trains_it(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "REPO", tmp_path)
    with pytest.raises(benchmark.MissingBaseError, match="fsrw_MobileNetV2_FPN_base_2800it_shapes"
                                                         "/split1/model_final.pth does not exist"
                                                         ".*tools/run_experiments.py"):
        benchmark.fine_tuning_arms(split=1, shot=10, seed=0, eval_period=100)


def test_class_vector_figures_and_timing_from_a_fine_tuned_one_stage_detector(tmp_path):
    folder = tmp_path / "fsrw_1shot_seed0"
    cfg = load_config(ONE_STAGE, TINY + ["OUTPUT_DIR", str(folder)])
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    (folder / "config.yaml").write_text(cfg.dump())  # as tools/train_net.py writes it
    found = benchmark.class_vector_figures(folder, tmp_path / "plots", "test")
    assert found["instances"] == 20 and len(found["classes"]) == 20  # 1 shot of 20 classes
    assert all((tmp_path / "plots" / name).is_file() for name in found["figures"])
    timing = benchmark.inference_timing({"fsrw_1shot_seed0": folder},
                                        benchmark.batch_1_inputs(1, 2), rounds=1, threads=1)
    assert set(timing) == {"fsrw_1shot_seed0"} | {f"fsrw_1shot_seed0 N={n}"
                                                  for n in benchmark.CLASS_COUNTS}
    assert all(t["ms_per_image"] > 0 for t in timing.values())
