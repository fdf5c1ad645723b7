"""TFA's pipeline steps: surgery from dataset class lists, base-only with the head the base model
was trained with, reuse of finished runs, the table, undefined results."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from dynnet_d2.config import load_config
from dynnet_d2.engine import (
    CheckpointMismatchError,
    DynnetCheckpointer,
    DynnetTrainer,
    train_or_reuse,
)
from dynnet_d2.evaluation.fewshot import check_results_defined, generalized_table
from dynnet_d2.experiments.sweep import BUILTIN_METHODS
from dynnet_d2.methods.tfa import benchmark
from dynnet_d2.methods.tfa.pipeline import randinit_surgery

REPO = Path(__file__).resolve().parents[3]
BASE = "configs/TFA/faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"
FINE_TUNE = "configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"
FC = "configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_fc_all_100itxK_shapes.yaml"


@pytest.fixture(scope="module")
def surgery(tmp_path_factory):
    """A (random) base model of split 1 (FC head, 15 classes) and its randinit surgery."""
    folder = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    base = DynnetTrainer.build_model(load_config(BASE))
    DynnetCheckpointer(base, str(folder)).save("model_final")
    path = randinit_surgery(str(folder / "model_final.pth"), "shapes_train_base1",
                            "shapes_train_all1")
    return base, path


def test_surgery_output_loads_strictly_into_the_fine_tuning_model(surgery):
    base, path = surgery
    assert path == path.parent / "model_reset_surgery.pth"
    cfg = load_config(FC, ["FEWSHOT.SHOT", 1, "MODEL.WEIGHTS", str(path)])
    model = DynnetTrainer.build_model(cfg)
    DynnetCheckpointer(model, strict=True).load(cfg.MODEL.WEIGHTS)
    # The 15 base rows (base classes come first in the "all" order) and background are copied.
    base_rows = base.roi_heads.box_predictor.cls_score.weight
    rows = model.roi_heads.box_predictor.cls_score.weight
    torch.testing.assert_close(rows[:15], base_rows[:15])
    torch.testing.assert_close(rows[20], base_rows[15])
    torch.testing.assert_close(model.roi_heads.box_predictor.cls_score.bias[:15],
                               base.roi_heads.box_predictor.cls_score.bias[:15])
    stamp = path.stat().st_mtime_ns
    randinit_surgery(str(path.parent / "model_final.pth"), "shapes_train_base1",
                     "shapes_train_all1")
    assert path.stat().st_mtime_ns == stamp  # an existing surgery output is kept


def test_fc_checkpoint_into_a_cosine_model_at_eval_only_names_the_bias(surgery, tmp_path):
    """The FC-trained base predictor run through the cosine head lost its bias silently."""
    _, path = surgery
    cfg = load_config(FINE_TUNE, ["FEWSHOT.SHOT", 1, "MODEL.WEIGHTS", str(path),
                                  "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(CheckpointMismatchError, match=r"has no roi_heads\.box_predictor\."
                                                      r"cls_score\.bias"):
        DynnetTrainer.evaluate_checkpoint(cfg)


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_base_only_is_evaluated_with_the_fc_head_everywhere():
    configs = {"sweep": BUILTIN_METHODS["base_only"].config, "demo": _tool("demo").BASE_ONLY,
               "benchmark": benchmark.BASE_ONLY}
    for where, config in configs.items():
        cfg = load_config(str(config), ["FEWSHOT.SHOT", 1])
        assert cfg.MODEL.ROI_HEADS.OUTPUT_LAYER == "FastRCNNOutputLayers", where
        assert cfg.DATASETS.TEST == ("shapes_test_all1",), where


def test_a_finished_run_is_reused(tmp_path):
    (tmp_path / "inference").mkdir()
    (tmp_path / "model_final.pth").write_bytes(b"")
    (tmp_path / "inference" / "results.json").write_text(json.dumps({"bbox": {"AP": 12.5}}))
    cfg = load_config(FINE_TUNE, ["FEWSHOT.SHOT", 1, "OUTPUT_DIR", str(tmp_path)])
    assert train_or_reuse(cfg) == {"bbox": {"AP": 12.5}}


def test_generalized_table_lists_all_base_and_novel_metrics():
    table = generalized_table({"TFA w/ cos, 1-shot": {"bbox": {"AP": 40.25, "bAP": 50.0,
                                                               "nAP": 10.0}},
                               "base only": {"bbox": {"AP": 30.0}}})
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "run", "AP", "AP50", "AP75", "bAP", "bAP50", "bAP75", "nAP", "nAP50", "nAP75"]
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells == ["TFA w/ cos, 1-shot", "40.2", "-", "-", "50.0", "-", "-", "10.0", "-", "-"]
    assert [c.strip() for c in lines[3].split("|")[1:-1]].count("-") == 8


def test_undefined_results_are_an_error_not_a_row():
    check_results_defined({"bbox": {"AP": 12.0, "nAP": math.nan}}, "run")  # one class undefined
    check_results_defined({"bbox": {"AP": None, "bAP": 0.0}}, "run")  # 0 is a result
    with pytest.raises(ValueError, match=r"cos/split1_1shot_seed0: every metric is undefined.*"
                                         r"SCORE_THRESH_TEST"):
        check_results_defined({"bbox": {"AP": math.nan, "bAP": None, "nAP": math.nan}},
                              "cos/split1_1shot_seed0")


def test_benchmark_finds_the_base_model_where_train_net_wrote_it(tmp_path, monkeypatch):
    # train_net runs in the checkout, so a relative OUTPUT_DIR lies under it, whatever the cwd
    def fake_run(config, opts, log, eval_only=False):
        return {"output_dir": "output/TFA/base/split1", "results": {"bbox": {"AP": 1.0}}}

    def stop(checkpoint, *args):
        raise RuntimeError(checkpoint)

    monkeypatch.setattr(benchmark, "measured_run", fake_run)
    monkeypatch.setattr(benchmark, "randinit_surgery", stop)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError) as found:
        benchmark.run({}, str(tmp_path / "tfa.json"), split=1, seed=0, shots=[1],
                      methods=["cos"], rerun=[], opts=[])
    assert str(found.value) == str(REPO / "output/TFA/base/split1/model_final.pth")
