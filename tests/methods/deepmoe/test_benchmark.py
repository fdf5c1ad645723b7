"""DeepMoE's benchmark (dynnet_d2/methods/deepmoe/benchmark.py) and analyses (analysis.py): the
suites' arms and configs, the static-pruning widths from measured runs, evaluation, timing and
gate-embedding shuffling of a finished run (a tiny one on digits, checked by hand), the figures
and the reports."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_backbone
from fvcore.nn import FlopCountAnalysis
from scipy import stats as scipy_stats

from dynnet_d2.config import load_config
from dynnet_d2.engine.arms import check_arms
from dynnet_d2.engine.runs import load_trained_model
from dynnet_d2.methods.deepmoe import benchmark

REPO = Path(__file__).resolve().parents[3]


def test_arms_vary_lambda_width_and_stage():
    table = benchmark.arms()
    check_arms(table)
    cfg = load_config(str(REPO / table["R38_lam0.002"].config), list(table["R38_lam0.002"].opts))
    assert cfg.MODEL.BACKBONE.NAME == "build_deepmoe_backbone" and cfg.MODEL.DEEPMOE.LAMBDA == 0.002
    assert cfg.MODEL.CIFAR_RESNET.DEPTH == 38 and cfg.SOLVER.MAX_ITER == 3000
    wide_arm = table["R38w2_lam0.005"]
    wide = load_config(str(REPO / wide_arm.config), list(wide_arm.opts))
    assert wide.MODEL.DEEPMOE.WIDEN == 2
    ft = load_config(str(REPO / table["R38_lam0.005_ft"].config))
    assert table["R38_lam0.005_ft"].after == "R38_lam0.005"
    assert ft.MODEL.DEEPMOE.FREEZE_GATING and ft.MODEL.DEEPMOE.LAMBDA == ft.MODEL.DEEPMOE.MU == 0
    plain = load_config(str(REPO / table["R38_plain"].config))
    assert plain.MODEL.BACKBONE.NAME == "build_cifar_resnet_backbone"
    assert set(benchmark.arms(finetune=False)) == set(table) - {
        f"R38_lam{lam:g}_ft" for lam in benchmark.LAMBDAS}
    # the matched lambda, its fine-tuning, the static network matched to it and SkipNet-38
    # start first
    assert list(table)[:5] == ["R38_plain", "R38_lam0.005", "R38_lam0.005_ft",
                               "R38_static_matched", "R38_skipnet"]
    skipnet = load_config(str(REPO / table["R38_skipnet"].config))
    assert skipnet.MODEL.BACKBONE.NAME == "build_skipnet_backbone"
    assert skipnet.MODEL.SKIPNET.STAGE == "SP" and skipnet.MODEL.CIFAR_RESNET.DEPTH == 38
    # the plain network's config and schedule, with gates
    assert (skipnet.SOLVER.MAX_ITER, skipnet.SOLVER.BASE_LR, skipnet.SOLVER.IMS_PER_BATCH) == (
        plain.SOLVER.MAX_ITER, plain.SOLVER.BASE_LR, plain.SOLVER.IMS_PER_BATCH)


def test_a_shorter_schedule_shortens_every_arm_alike():
    table = benchmark.arms(max_iter=1500)
    iterations = {name: load_config(str(REPO / arm.config), list(arm.opts)).SOLVER.MAX_ITER
                  for name, arm in table.items()}
    assert {n: i for n, i in iterations.items() if not n.endswith("_ft")} == dict.fromkeys(
        [n for n in table if not n.endswith("_ft")], 1500)
    assert {n: i for n, i in iterations.items() if n.endswith("_ft")} == dict.fromkeys(
        [f"R38_lam{lam:g}_ft" for lam in benchmark.LAMBDAS], 500)
    # the configs' schedule adds no options
    assert benchmark.arms(max_iter=3000)["R38_plain"].opts == []


@pytest.mark.parametrize("args,message", [
    (["--max-iter", "0"], "--max-iter 0: a positive number of iterations"),
    (["--suite", "shapes", "--max-iter", "1500"], "for the fashionmnist suite only"),
    (["--max-iter", "1500"], "holds arms of 3000 iterations; name another --output"),
    (["--suite", "widening", "--widths", "1", "0"], "--widths 1 0: width factors are >= 1"),
    (["--timing-only", "--no-timing"], "--timing-only and --no-timing: choose one"),
    (["--seeds", "1", "-1"], "--seeds 1 -1: seeds >= 0, for the fashionmnist suite only"),
    (["--suite", "shapes", "--seeds", "1"], "--seeds 1: seeds >= 0, for the fashionmnist suite"),
])
def test_the_tool_rejects_a_bad_schedule_before_training(tmp_path, args, message):
    (tmp_path / "record.json").write_text('{"runs": {}, "max_iter": 3000}')
    proc = subprocess.run([sys.executable, "tools/benchmark_deepmoe.py", "--output",
                           str(tmp_path / "record.json"), "--work-dir", str(tmp_path / "work"),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert not (tmp_path / "work").exists()


def test_seeds_repeat_the_matched_flops_comparison_each_from_its_own_seed():
    table = benchmark.arms(max_iter=1500)
    seeded = benchmark.with_seeds(table, [1, 2])
    check_arms(seeded)
    assert list(seeded)[:len(table)] == list(table)
    added = {n: a for n, a in seeded.items() if n not in table}
    assert set(added) == {f"{arm}_seed{s}" for arm in benchmark.REPEATED for s in (1, 2)}
    for name, arm in added.items():
        base = table[benchmark.repeated_arm(name)]
        seed = int(name.rsplit("_seed", 1)[1])
        assert list(arm.opts) == list(base.opts) + ["SEED", seed]
        assert arm.after == (None if base.after is None else f"{base.after}_seed{seed}")
        assert arm.derived_opts is base.derived_opts
        assert load_config(str(REPO / arm.config), list(arm.opts)).SEED == seed
    assert benchmark.repeated_arm("R38_lam0.005_ft_seed12") == "R38_lam0.005_ft"
    assert benchmark.repeated_arm("R38_lam0.005_ft") is None
    assert benchmark.with_seeds(table, []) == table


def test_seed_statistics_by_hand():
    results = {"R38_plain": {"top1": 90.0, "mean_gflops": 0.02},
               "R38_plain_seed1": {"top1": 91.0, "mean_gflops": 0.02},
               "R38_plain_seed2": {"top1": 92.0, "mean_gflops": 0.02},
               "R38_lam0.01": {"top1": 80.0, "mean_gflops": 0.001}}
    statistics = benchmark.seed_statistics(results)
    assert list(statistics) == ["R38_plain"]
    plain = statistics["R38_plain"]
    assert plain["runs"] == ["R38_plain", "R38_plain_seed1", "R38_plain_seed2"]
    # mean 91, sample std 1, t(0.975, 2) = 4.3027 -> 4.3027 / sqrt(3)
    assert plain["top1"]["n"] == 3 and plain["top1"]["mean"] == pytest.approx(91.0)
    assert plain["top1"]["std"] == pytest.approx(1.0)
    assert plain["top1"]["ci95"] == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)
    assert plain["mean_gflops"]["mean"] == pytest.approx(0.02)
    record = {"results": results, "seed_statistics": statistics}
    assert "| R38_plain | 3 | 91.00 ± 2.48 | 20.00 |" in benchmark.report(record)
    # the figure shows each arm's first run only
    assert [p["label"] for p in benchmark.flops_points(results, "R38_plain")] == ["lambda 0.01"]


def test_seed_differences_are_welch_intervals_between_the_compared_arms():
    results = {"R38_plain": {"top1": 90.0}, "R38_plain_seed1": {"top1": 92.0},
               "R38_lam0.005_ft": {"top1": 91.0}, "R38_lam0.005_ft_seed1": {"top1": 92.0},
               "R38_lam0.005_ft_seed2": {"top1": 93.0},
               "R38_static_matched": {"top1": 89.0}}
    # the static network has one run: only DeepMoE fine-tuned vs plain is compared
    (row,) = benchmark.seed_differences(results)
    assert (row["arm"], row["baseline"]) == ("R38_lam0.005_ft", "R38_plain")
    # means 92 and 91, variances 1 and 2: se^2 = 1/3 + 2/2, df = (4/3)^2 / ((1/3)^2/2 + 1^2/1)
    assert row["difference"] == pytest.approx(1.0)
    assert row["df"] == pytest.approx((4 / 3) ** 2 / ((1 / 3) ** 2 / 2 + 1))
    assert row["ci95"] == pytest.approx(scipy_stats.t.ppf(0.975, row["df"]) * (4 / 3) ** 0.5)
    table = benchmark.report({"results": {}, "seed_differences": [row]})
    assert f"| R38_lam0.005_ft − R38_plain | +1.00 ± {row['ci95']:.2f} |" in table


def test_widening_and_shapes_arms():
    widening = benchmark.widening_arms()
    check_arms(widening)
    assert list(widening)[:2] == ["R14x1_plain", "R14x1_deepmoe"] and len(widening) == 8
    plain = load_config(str(REPO / widening["R14x3_plain"].config),
                        list(widening["R14x3_plain"].opts))
    moe = load_config(str(REPO / widening["R14x3_deepmoe"].config),
                      list(widening["R14x3_deepmoe"].opts))
    for cfg in (plain, moe):
        assert cfg.MODEL.CIFAR_RESNET.DEPTH == 14 and cfg.SOLVER.MAX_ITER == 1000
    assert plain.MODEL.CIFAR_RESNET.WIDTH == 48 and moe.MODEL.DEEPMOE.WIDEN == 3
    assert moe.MODEL.DEEPMOE.LAMBDA == benchmark.WIDENING_LAMBDA == 0.0075
    shapes = benchmark.shapes_arms()
    check_arms(shapes)
    configs = {n: load_config(str(REPO / a.config), list(a.opts)) for n, a in shapes.items()}
    meta_archs = {"det": "DynamicGeneralizedRCNN", "seg": "DynamicSemanticSegmentor"}
    assert {n: c.MODEL.META_ARCHITECTURE for n, c in configs.items()} == {
        f"{task}_{arm}": meta_arch for task, meta_arch in meta_archs.items()
        for arm in ("plain", "deepmoe", "deepmoe_lam0.005", "static_matched")}
    for task in ("det", "seg"):  # plain, DeepMoE and static on the same schedule and data
        plain, moe = configs[f"{task}_plain"], configs[f"{task}_deepmoe"]
        assert moe.MODEL.DEEPMOE.LAMBDA == 0.01
        assert configs[f"{task}_deepmoe_lam0.005"].MODEL.DEEPMOE.LAMBDA == 0.005
        assert moe.MODEL.BACKBONE.NAME == "build_deepmoe_backbone"
        assert moe.MODEL.DEEPMOE.BASE_BACKBONE == plain.MODEL.BACKBONE.NAME
        assert (moe.SOLVER, moe.DATASETS, moe.INPUT) == (plain.SOLVER, plain.DATASETS,
                                                         plain.INPUT)
        assert configs[f"{task}_static_matched"] == plain
        static = shapes[f"{task}_static_matched"]
        assert static.after == f"{task}_deepmoe_lam0.005" and static.derived_opts is not None
        assert list(shapes).index(f"{task}_plain") < list(shapes).index(static.after)


def test_static_matched_width_from_the_measured_run(monkeypatch):
    # executed 0.25 of the static FLOPs: width 16 sqrt(0.25) = 8, trained from scratch
    monkeypatch.setattr(benchmark, "evaluate", lambda run: {"mean_gflops": 0.02,
                                                            "static_gflops": 0.08})
    assert benchmark.static_matched_opts(Path("x")) == ["MODEL.CIFAR_RESNET.WIDTH", 8,
                                                         "MODEL.WEIGHTS", ""]


def _backbone_flops(cfg, width):
    cfg = cfg.clone()
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = width
    backbone = build_backbone(cfg).eval()
    return FlopCountAnalysis(backbone, torch.zeros((1,) + benchmark.MATCH_SHAPE)).total()


def test_narrowed_backbone_width_is_the_closest_in_fvcore_flops():
    cfg = load_config(str(REPO / benchmark.DETECTOR), ["MODEL.DEVICE", "cpu"])
    full = _backbone_flops(cfg, 32)
    assert benchmark.narrowed_backbone_width(cfg, 1.0) == 32
    width = benchmark.narrowed_backbone_width(cfg, 0.48)
    error = {w: abs(_backbone_flops(cfg, w) / full - 0.48) for w in (width - 1, width, width + 1)}
    assert error[width] == min(error.values()) and error[width] < 0.03
    # the FPN's output convolutions keep their 64 channels: no width reaches 1 % of the FLOPs
    assert benchmark.narrowed_backbone_width(cfg, 0.01) == 1


def test_static_backbone_matched_to_the_ratio_of_the_runs_executed_flops(tmp_path, monkeypatch):
    cfg = load_config(str(REPO / benchmark.DETECTOR), ["MODEL.DEVICE", "cpu"])
    for name, gflops in (("det_plain", 0.4), ("det_deepmoe_lam0.005", 0.1)):
        (tmp_path / name / "inference").mkdir(parents=True)
        (tmp_path / name / "config.yaml").write_text(cfg.dump())
        (tmp_path / name / "inference" / "results.json").write_text(
            json.dumps({"flops": {"mean_backbone_gflops": gflops}}))
    ratios = []
    monkeypatch.setattr(benchmark, "narrowed_backbone_width",
                        lambda narrowed, ratio: ratios.append((narrowed, ratio)) or 9)
    derive = benchmark.static_matched_backbone_opts("det_plain")
    assert derive(tmp_path / "det_deepmoe_lam0.005") == [
        "MODEL.RESNETS.STEM_OUT_CHANNELS", 9, "MODEL.RESNETS.RES2_OUT_CHANNELS", 9,
        "MODEL.WEIGHTS", ""]
    assert ratios[0][1] == pytest.approx(0.25)
    assert ratios[0][0].MODEL.RESNETS.STEM_OUT_CHANNELS == 32
    with pytest.raises(FileNotFoundError, match="'seg_plain'.*run the suite again"):
        benchmark.static_matched_backbone_opts("seg_plain")(tmp_path / "det_deepmoe_lam0.005")


def train_tiny(folder: Path, config: str, prepare=None) -> Path:
    """``config`` trained 3 iterations on digits into ``folder`` as tools/train_net.py would
    (``prepare(model)`` first)."""
    from dynnet_d2.engine import DynnetTrainer

    cfg = load_config(str(REPO / config),
                      ["OUTPUT_DIR", str(folder), "MODEL.DEVICE", "cpu", "DATASETS.TEST", "()",
                       "SOLVER.MAX_ITER", 3, "SOLVER.IMS_PER_BATCH", 8])
    (folder / "config.yaml").write_text(cfg.dump())  # as tools/train_net.py writes it
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    if prepare is not None:
        with torch.no_grad():
            prepare(trainer.model)
    trainer.train()
    return folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A DeepMoE ResNet-8 trained 3 iterations on digits, some channels closed."""
    def close_channels(model):
        model.backbone.gating.heads[0].weight[:4] = -1.0  # 4 of 8 channels closed
    return train_tiny(tmp_path_factory.mktemp("deepmoe_run"),
                      "configs/DeepMoE/deepmoe_R8cifar_200it_digits.yaml", close_channels)


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


def test_evaluate_and_time_a_skipnet_run_as_it_executes(tmp_path, monkeypatch):
    """The suite's SkipNet arm is evaluated and timed like the plain network: its executed FLOPs
    from the blocks that ran, one timing (no masked / sliced variants)."""
    run = train_tiny(tmp_path, "configs/SkipNet/skipnet_R8cifar_sp_200it_digits.yaml")
    images = (torch.rand(6, 1, 8, 8) * 255).to(torch.uint8)
    monkeypatch.setattr(benchmark, "test_images", lambda: (images, torch.zeros(6).long()))
    _, model = load_trained_model(run)
    with torch.no_grad():
        outputs = model([{"image": i} for i in images])
    measured = benchmark.evaluate(run, batch=4)
    assert measured["mean_gflops"] == pytest.approx(sum(o["gflops"] for o in outputs) / 6)
    assert 0 < measured["mean_gflops"] <= measured["static_gflops"]
    assert measured["top1"] == pytest.approx(100 * sum(
        int(o["scores"].argmax() == 0) for o in outputs) / 6)
    assert set(benchmark.time_arms({"skipnet": run}, batch=2, images=images,
                                   rounds=1)) == {"skipnet"}


def test_gate_embedding_shuffling_by_hand(tiny_run):
    from dynnet_d2.methods.deepmoe.analysis import gate_statistics, shuffled_accuracy

    _, model = load_trained_model(tiny_run)
    torch.manual_seed(0)
    images = (torch.rand(9, 1, 8, 8) * 255).to(torch.uint8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0, 1])
    statistics = gate_statistics(model, images, batch=4)
    assert statistics["embeddings"].shape == (9, 16)
    assert statistics["open_fraction"].shape == (9, 3)  # 3 gated blocks in a ResNet-8
    own = (statistics["predictions"] == labels).float()
    groups = {"a": (0, 1), "b": (2,)}
    shuffled = shuffled_accuracy(model, images, labels, statistics["embeddings"], groups,
                                 batch=4)
    for c in range(3):  # own embeddings: the model's own predictions
        assert shuffled[c]["own"] == pytest.approx(100 * own[labels == c].mean().item())
    assert shuffled[2]["same_group"] != shuffled[2]["same_group"]  # NaN: alone in its group
    # forcing image 5's mixture weights onto image 0 gives image 5's gates
    with torch.no_grad():
        normalized = (images.float() - model.pixel_mean) / model.pixel_std
        model.logits(normalized[5:6])
        donor_gates = [g.clone() for g in model.backbone.gates]
        with model.backbone.forced_embedding(statistics["embeddings"][5:6]):
            model.logits(normalized[0:1])
        for donor, forced in zip(donor_gates, model.backbone.gates):
            # (the forced weights came from a batch of 4: equal up to float rounding)
            torch.testing.assert_close(forced, donor, rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match="2 embeddings for a batch of 1"):
            with model.backbone.forced_embedding(statistics["embeddings"][:2]):
                model.logits(normalized[0:1])
    with pytest.raises(ValueError, match=r"classes \[2\] are in no group"):
        shuffled_accuracy(model, images, labels, statistics["embeddings"], {"a": (0, 1)})


def test_report_and_figures(tmp_path):
    record = {"results": {"R38_plain": {"top1": 92.5, "mean_gflops": 0.064},
                          "R38_lam0.001": {"top1": 92.0, "mean_gflops": 0.032},
                          "R38_skipnet": {"top1": 91.0, "mean_gflops": 0.016}},
              "timing": {"threads1/batch1": {"R38_plain": {"ms_per_image": 6.5},
                                             "R38_lam0.001 mask": {"ms_per_image": 7.0},
                                             "R38_lam0.001 slice": {"ms_per_image": 4.55},
                                             "R38_skipnet": {"ms_per_image": 3.25}},
                         "threads1/batch64": {"R38_plain": {"ms_per_image": 1.0},
                                              "R38_lam0.001 slice union": {"ms_per_image": 1.2},
                                              "R38_skipnet": {"ms_per_image": 0.5}}},
              "analysis": {"R38_lam0.001": {
                  "shuffling": {"0": {"own": 90.0, "same_group": 80.0, "other_groups": 50.0}},
                  "utilisation_per_class": [[0.5, 1.0, 0.25]] * 10}}}
    table = benchmark.report(record)
    assert "| R38_lam0.001 | 92.00 | 32.00 | 0.50 |" in table
    assert "threads1, batch1" in table and "| R38_plain | 6.500 |" in table
    assert "| 0 | 90.0 | 80.0 | 50.0 |" in table
    # half the FLOPs saved, 30 % of the time (1 - 4.55 / 6.5): a ratio of 0.6; batch 64 is not
    # a batch-1 saving
    assert "| R38_lam0.001 | 50.0 | 30.0 | 0.60 |" in table
    # SkipNet as it executes: 75 % of the FLOPs and half the time saved; masking saves nothing
    # by design and is not a row, nor is the plain network itself
    savings = table.split("Batch-1 savings")[1].splitlines()
    assert [line.split(" |")[0] for line in savings if line.startswith("| R38")] == [
        "| R38_lam0.001", "| R38_skipnet"]
    assert "| R38_skipnet | 75.0 | 50.0 | 0.67 |" in savings
    assert table.count("Batch-1 savings") == 1
    written = benchmark.plot(record, tmp_path, "fashionmnist")
    assert [p.name for p in written] == ["fashionmnist_accuracy_vs_flops.png",
                                         "fashionmnist_channel_utilisation_R38_lam0.001.png"]
    assert all(p.stat().st_size > 0 for p in written)
    shapes = {"runs": {"det_plain": {"results": {"bbox": {"AP": 40.0, "AP50": 60.0},
                                                 "flops": {"mean_backbone_gflops": 0.427}}},
                       "seg_deepmoe": {"results": {"sem_seg": {"mIoU": 55.5},
                                                   "flops": {"mean_backbone_gflops": 0.2}}},
                       "det_deepmoe": {"error": "failed"}}}
    lines = benchmark.report(shapes, "shapes").splitlines()
    assert lines[2:] == ["| det_plain | 40.00 | 60.00 | – | 0.427 |",
                         "| seg_deepmoe | – | – | 55.50 | 0.200 |",
                         "| det_deepmoe | – | – | – | – |"]


def test_time_backbones_of_a_plain_and_a_deepmoe_segmentor(monkeypatch):
    from detectron2.modeling import build_model

    models = {}
    for name, arm in (("seg_plain", benchmark.shapes_arms()["seg_plain"]),
                      ("seg_deepmoe", benchmark.shapes_arms()["seg_deepmoe"])):
        cfg = load_config(str(REPO / arm.config), list(arm.opts) + ["MODEL.DEVICE", "cpu"])
        models[name] = (cfg, build_model(cfg).eval())
    monkeypatch.setattr(benchmark, "load_trained_model", lambda run: models[run.name])
    timings = benchmark.time_backbones({n: Path(n) for n in models}, images=2, rounds=1)
    assert set(timings) == {"seg_plain", "seg_deepmoe mask", "seg_deepmoe slice"}
    assert all(t["ms_per_image"] > 0 and len(t["runs_s"]) == 1 for t in timings.values())
    assert models["seg_deepmoe"][1].backbone.inference == "slice"  # the last variant's mode


def test_measure_resumes_and_times_again_only_when_more_arms_finished(tmp_path, monkeypatch):
    from dynnet_d2.engine.arms import Arm

    calls = []
    monkeypatch.setattr(benchmark, "evaluate", lambda run: {"top1": 90.0, "mean_gflops": 0.1})
    monkeypatch.setattr(benchmark, "analyse", lambda run: {"analysed": run.name})
    monkeypatch.setattr(benchmark, "test_images", lambda: (torch.zeros(4, 1, 8, 8), None))
    monkeypatch.setattr(benchmark, "time_arms", lambda runs, **kw: calls.append(sorted(runs))
                        or {"ms": 1.0})
    table = {"R38_plain": Arm("x.yaml"), "R38_lam0.005": Arm("x.yaml")}
    (tmp_path / "R38_plain").mkdir()
    (tmp_path / "R38_plain" / "model_final.pth").write_bytes(b"")
    record, out = {}, tmp_path / "record.json"

    def measure():
        benchmark.measure(table, record, out, tmp_path, workers=1, threads=[1], rounds=1,
                          batch1_images=2, train=False)

    measure()
    assert calls == [["R38_plain"]] * 2 and set(record["timing"]) == {"threads1/batch1",
                                                                      "threads1/batch64"}
    measure()  # nothing new: nothing evaluated or timed again
    assert len(calls) == 2 and list(record["results"]) == ["R38_plain"]
    (tmp_path / "R38_lam0.005").mkdir()
    (tmp_path / "R38_lam0.005" / "model_final.pth").write_bytes(b"")
    measure()
    assert calls[2:] == [["R38_lam0.005", "R38_plain"]] * 2
    assert record["analysis"] == {"R38_lam0.005": {"analysed": "R38_lam0.005"}}
    assert '"timed_arms"' in out.read_text()
    (tmp_path / "R38_plain_seed1").mkdir()  # another seed: evaluated, not timed
    (tmp_path / "R38_plain_seed1" / "model_final.pth").write_bytes(b"")
    table["R38_plain_seed1"] = Arm("x.yaml", ["SEED", 1])
    measure()
    assert len(calls) == 4 and "R38_plain_seed1" in record["results"]
    assert record["seed_statistics"]["R38_plain"]["runs"] == ["R38_plain", "R38_plain_seed1"]


def test_shapes_backbones_timed_again_when_more_runs_of_their_task_finished(tmp_path,
                                                                            monkeypatch):
    from dynnet_d2.engine.arms import Arm
    from dynnet_d2.engine.results import results_file

    calls = []
    monkeypatch.setattr(benchmark, "time_backbones", lambda runs, **kw: calls.append(sorted(runs))
                        or {"ms": 1.0})
    table = {n: Arm("x.yaml") for n in ("det_plain", "det_deepmoe", "det_static_matched",
                                        "seg_plain", "seg_deepmoe")}

    def finish(name):
        results_file(tmp_path / name).parent.mkdir(parents=True)
        results_file(tmp_path / name).write_text("{}")

    for name in ("det_plain", "det_deepmoe", "seg_plain", "seg_deepmoe"):
        finish(name)
    record, out = {}, tmp_path / "record.json"

    def measure():
        benchmark.measure_shapes(table, record, out, tmp_path, workers=1, threads=[1],
                                 rounds=1, images=2, train=False)

    benchmark.measure_shapes(table, record, out, tmp_path, workers=1, threads=[1], rounds=1,
                             images=2, train=False, timing=False)
    assert calls == [] and "timing" not in record
    measure()
    measure()  # nothing new: nothing timed again
    assert calls == [["det_deepmoe", "det_plain"], ["seg_deepmoe", "seg_plain"]]
    finish("det_static_matched")
    measure()  # only the task with a new run
    assert calls[2:] == [["det_deepmoe", "det_plain", "det_static_matched"]]
    assert set(record["timing"]) == {"det/threads1/batch1", "seg/threads1/batch1"}


def test_flops_points_are_series_ordered_by_flops():
    results = {"R38_plain": {"top1": 90.0, "mean_gflops": 0.02},
               "R38_lam0.01": {"top1": 86.0, "mean_gflops": 0.001},
               "R38_lam0.005": {"top1": 89.0, "mean_gflops": 0.01},
               "R38_lam0.005_ft": {"top1": 89.5, "mean_gflops": 0.01},
               "R38_static_matched": {"top1": 89.2, "mean_gflops": 0.0095},
               "R38_skipnet": {"top1": 89.4, "mean_gflops": 0.0104},
               "R38w2_lam0.004": {"top1": 87.0, "mean_gflops": 0.03}}
    points = benchmark.flops_points(results, "R38_plain")
    assert [(p["series"], p["label"], p["relative_flops"]) for p in points] == [
        ("narrow-DeepMoE", "lambda 0.01", 0.05), ("narrow-DeepMoE", "lambda 0.005", 0.5),
        ("narrow-DeepMoE, fine-tuned", "", 0.5), ("static", "", 0.475),
        ("SkipNet", "", 0.52), ("wide-DeepMoE", "lambda 0.004", 1.5)]
    widening = benchmark.flops_points({"R14x1_plain": {"top1": 1.0, "mean_gflops": 1.0},
                                       "R14x2_plain": {"top1": 2.0, "mean_gflops": 4.0},
                                       "R14x1_deepmoe": {"top1": 3.0, "mean_gflops": 0.5}},
                                      "R14x1_plain")
    assert [(p["series"], p["label"]) for p in widening] == [("plain", "x2"), ("DeepMoE", "x1")]
