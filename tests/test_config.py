"""Loading configs: few-shot placeholders and per-shot schedules resolved once, clearly."""
import pytest

from dynnet_d2.config import (
    describe_schedule,
    get_dynnet_cfg,
    load_config,
    resolve_fewshot,
    schedule_per_shot,
)

FINE_TUNE = "configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"


def test_fewshot_overrides_fill_names_and_scale_the_schedule():
    cfg = load_config(FINE_TUNE, ["FEWSHOT.SPLIT", 2, "FEWSHOT.SHOT", 5, "FEWSHOT.SEED", 7])
    assert cfg.DATASETS.TRAIN == ("shapes_train_all2_5shot_seed7",)
    assert cfg.DATASETS.TEST == ("shapes_test_all2",)
    assert cfg.MODEL.WEIGHTS.endswith("/split2/model_reset_surgery.pth")
    assert cfg.OUTPUT_DIR.endswith("/split2_5shot_seed7")
    solver = cfg.SOLVER
    assert (solver.MAX_ITER, solver.STEPS, solver.CHECKPOINT_PERIOD) == (500, (400,), 500)
    # A resolved config (the config.yaml a run writes) resolves to itself.
    again = resolve_fewshot(cfg.clone())
    assert again.SOLVER.MAX_ITER == 500 and again.DATASETS.TRAIN == cfg.DATASETS.TRAIN


def test_a_fewshot_config_without_shot_is_an_error():
    with pytest.raises(ValueError, match="set FEWSHOT.SHOT to K >= 1"):
        load_config(FINE_TUNE)


def test_configs_without_placeholders_are_unchanged():
    cfg = get_dynnet_cfg()
    before = cfg.dump()
    assert resolve_fewshot(cfg).dump() == before


def test_the_logged_schedule_says_a_max_iter_override_of_a_per_shot_config_is_per_shot():
    opts = ["FEWSHOT.SHOT", 5, "SOLVER.MAX_ITER", 30]
    assert schedule_per_shot(FINE_TUNE, opts)
    text = describe_schedule(load_config(FINE_TUNE, opts), schedule_per_shot(FINE_TUNE, opts))
    assert text.startswith("SOLVER.MAX_ITER 150 iterations = 30 per shot x 5 shot(s)")
    base = "configs/TFA/faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"
    assert not schedule_per_shot(base, ["FEWSHOT.SPLIT", 1])
    assert describe_schedule(load_config(base, ["FEWSHOT.SPLIT", 1]), False) == (
        "SOLVER.MAX_ITER 2800 iterations")
