"""TFA's pipeline steps: surgery from dataset class lists, reuse of finished runs, the table."""
import json

import torch

from dynnet_d2.config import load_config
from dynnet_d2.engine import DynnetCheckpointer, DynnetTrainer
from dynnet_d2.engine.tfa import randinit_surgery, train_or_reuse
from dynnet_d2.evaluation.fewshot import generalized_table

BASE = "configs/TFA/faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"
FINE_TUNE = "configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"


def test_surgery_output_loads_strictly_into_the_fine_tuning_model(tmp_path):
    base = DynnetTrainer.build_model(load_config(BASE))
    DynnetCheckpointer(base, str(tmp_path)).save("model_final")
    path = randinit_surgery(str(tmp_path / "model_final.pth"), "shapes_train_base1",
                            "shapes_train_all1")
    assert path == tmp_path / "model_reset_surgery.pth"
    cfg = load_config(FINE_TUNE, ["FEWSHOT.SHOT", 1, "MODEL.WEIGHTS", str(path)])
    model = DynnetTrainer.build_model(cfg)
    DynnetCheckpointer(model, strict=True).load(cfg.MODEL.WEIGHTS)
    # The 15 base rows (base classes come first in the "all" order) and background are copied.
    base_rows = base.roi_heads.box_predictor.cls_score.weight
    rows = model.roi_heads.box_predictor.cls_score.weight
    torch.testing.assert_close(rows[:15], base_rows[:15])
    torch.testing.assert_close(rows[20], base_rows[15])
    stamp = path.stat().st_mtime_ns
    randinit_surgery(str(tmp_path / "model_final.pth"), "shapes_train_base1", "shapes_train_all1")
    assert path.stat().st_mtime_ns == stamp  # an existing surgery output is kept


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
