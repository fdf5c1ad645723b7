"""DeepMoE's benchmark (dynnet_d2/methods/deepmoe/benchmark.py): the arms' configs, the
static-pruning width from a measured run, evaluation and timing of a finished run (a tiny one
on digits), and the report."""
from pathlib import Path

import pytest
import torch

from dynnet_d2.config import load_config
from dynnet_d2.engine.arms import check_arms
from dynnet_d2.methods.deepmoe import benchmark

REPO = Path(__file__).resolve().parents[3]


def test_arms_vary_lambda_width_and_stage():
    table = benchmark.arms()
    check_arms(table)
    cfg = load_config(str(REPO / table["R38_lam0.002"].config), list(table["R38_lam0.002"].opts))
    assert cfg.MODEL.BACKBONE.NAME == "build_deepmoe_backbone" and cfg.MODEL.DEEPMOE.LAMBDA == 0.002
    assert cfg.MODEL.CIFAR_RESNET.DEPTH == 38 and cfg.SOLVER.MAX_ITER == 3000
    wide = load_config(str(REPO / table["R38w2_lam0.01"].config), list(table["R38w2_lam0.01"].opts))
    assert wide.MODEL.DEEPMOE.WIDEN == 2
    ft = load_config(str(REPO / table["R38_lam0.001_ft"].config))
    assert table["R38_lam0.001_ft"].after == "R38_lam0.001"
    assert ft.MODEL.DEEPMOE.FREEZE_GATING and ft.MODEL.DEEPMOE.LAMBDA == ft.MODEL.DEEPMOE.MU == 0
    plain = load_config(str(REPO / table["R38_plain"].config))
    assert plain.MODEL.BACKBONE.NAME == "build_cifar_resnet_backbone"
    assert set(benchmark.arms(finetune=False)) == set(table) - {
        f"R38_lam{lam:g}_ft" for lam in benchmark.LAMBDAS}


def test_static_matched_width_from_the_measured_run(monkeypatch):
    # executed 0.25 of the static FLOPs: width 16 sqrt(0.25) = 8, trained from scratch
    monkeypatch.setattr(benchmark, "evaluate", lambda run: {"mean_gflops": 0.02,
                                                            "static_gflops": 0.08})
    assert benchmark.static_matched_opts(Path("x")) == ["MODEL.CIFAR_RESNET.WIDTH", 8,
                                                         "MODEL.WEIGHTS", ""]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A DeepMoE ResNet-8 trained 3 iterations on digits, some channels closed."""
    from dynnet_d2.engine import DynnetTrainer

    folder = tmp_path_factory.mktemp("deepmoe_run")
    cfg = load_config(str(REPO / "configs/DeepMoE/deepmoe_R8cifar_200it_digits.yaml"),
                      ["OUTPUT_DIR", str(folder), "MODEL.DEVICE", "cpu", "DATASETS.TEST", "()",
                       "SOLVER.MAX_ITER", 3, "SOLVER.IMS_PER_BATCH", 8])
    (folder / "config.yaml").write_text(cfg.dump())  # as tools/train_net.py writes it
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    with torch.no_grad():
        trainer.model.backbone.gating.heads[0].weight[:4] = -1.0  # 4 of 8 channels closed
    trainer.train()
    return folder


def test_evaluate_and_time_a_finished_run(tiny_run, monkeypatch):
    images = (torch.rand(6, 1, 8, 8) * 255).to(torch.uint8)
    monkeypatch.setattr(benchmark, "test_images", lambda: (images, torch.zeros(6).long()))
    measured = benchmark.evaluate(tiny_run, batch=4)
    assert 0 <= measured["top1"] <= 100
    assert measured["mean_gflops"] < measured["static_gflops"]  # closed channels did not run
    timings = benchmark.time_arms({"tiny": tiny_run}, batch=2, images=images, rounds=1)
    assert set(timings) == {"tiny mask", "tiny slice union", "tiny slice group"}
    assert all(t["ms_per_image"] > 0 for t in timings.values())
    assert set(benchmark.time_arms({"tiny": tiny_run}, batch=1, images=images[:2],
                                   rounds=1)) == {"tiny mask", "tiny slice"}


def test_report():
    record = {"results": {"R38_plain": {"top1": 92.5, "mean_gflops": 0.064},
                          "R38_lam0.001": {"top1": 92.0, "mean_gflops": 0.032}},
              "timing": {"threads1/batch1": {"R38_plain": {"ms_per_image": 6.5}}}}
    table = benchmark.report(record)
    assert "| R38_lam0.001 | 92.00 | 32.00 | 0.50 |" in table
    assert "threads1, batch1" in table and "| R38_plain | 6.500 |" in table
