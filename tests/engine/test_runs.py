"""A finished run read back for benchmarks: the model is built from the run's own config.yaml
(not from a second copy of its options) and its weights load strictly."""
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model

from dynnet_d2.config import load_config
from dynnet_d2.engine import CheckpointMismatchError
from dynnet_d2.engine.runs import load_trained_model, run_config
from dynnet_d2.methods.skipnet import benchmark

REPO = Path(__file__).resolve().parents[2]
SKIPNET = REPO / "configs/SkipNet/skipnet_R8cifar_sp_200it_digits.yaml"


def fake_run(folder: Path, opts) -> torch.nn.Module:
    """A run folder as tools/train_net.py leaves it: config.yaml and model_final.pth."""
    cfg = load_config(str(SKIPNET), ["MODEL.DEVICE", "cpu", *opts])
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(cfg.dump())
    model = build_model(cfg)
    torch.save({"model": model.state_dict()}, folder / "model_final.pth")
    return model


def test_the_model_is_built_from_the_runs_config_yaml(tmp_path):
    # an SDV baseline trained at a skip rate that the config file does not hold
    trained = fake_run(tmp_path / "R8_SDV", ["MODEL.SKIPNET.STAGE", "SDV",
                                             "MODEL.SKIPNET.SDV_SKIP_RATE", 0.6133])
    cfg, model = load_trained_model(tmp_path / "R8_SDV")
    assert cfg.MODEL.SKIPNET.SDV_SKIP_RATE == pytest.approx(0.6133)
    assert model.backbone.sdv_skip_rate == pytest.approx(0.6133) and not model.training
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert run_config(tmp_path / "R8_SDV", opts=["MODEL.SKIPNET.INFERENCE", "mask"]
                      ).MODEL.SKIPNET.INFERENCE == "mask"


def test_weights_that_do_not_fit_the_runs_config_are_an_error(tmp_path):
    fake_run(tmp_path / "run", ["MODEL.CIFAR_RESNET.WIDTH", 4])
    (tmp_path / "run" / "config.yaml").write_text(
        load_config(str(SKIPNET), ["MODEL.DEVICE", "cpu"]).dump())  # width 8
    with pytest.raises(CheckpointMismatchError, match="shapes differ"):
        load_trained_model(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="config.yaml does not exist"):
        load_trained_model(tmp_path / "nothing")


def test_the_skipnet_benchmark_evaluates_the_sdv_arm_at_its_trained_rate(tmp_path):
    """The arm table holds no SDV rate (the benchmark passes the learned one at training time):
    a model rebuilt from the table's options ran at the default 0.5."""
    table = benchmark.arms([8], alpha_sweep=False, baselines=True)
    assert "MODEL.SKIPNET.SDV_SKIP_RATE" not in table["R8_SDV"].opts
    fake_run(tmp_path / "R8_SDV", ["MODEL.SKIPNET.STAGE", "SDV",
                                   "MODEL.SKIPNET.SDV_SKIP_RATE", 0.6133])
    model = benchmark.trained_model(tmp_path, "R8_SDV")
    assert model.backbone.sdv_skip_rate == pytest.approx(0.6133)
