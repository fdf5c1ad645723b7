"""IDK prediction cascades (thesis ch. 4): grid search, the cost-aware risk and its gradient,
the oracle, every registered fitting method, the runner (with and without a deadline), stages,
save/load, checks (stage order included), the tool, and the benchmark's stage building and choice
of the served cascade."""
import json
import logging
from pathlib import Path

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from torch import nn

import dynnet_d2  # noqa: F401  (registers every component)
from dynnet_d2.config import load_config
from dynnet_d2.methods.idk import (
    IDK_METHOD_REGISTRY,
    CascadeConfigError,
    CascadeData,
    FitSpec,
    HumanExpertStage,
    IDKCascade,
    ModelStage,
    ModuleStage,
    benchmark,
    cascade_risk,
    evaluate_exits,
    exit_stages,
    fit_classifiers,
    oracle_exit_stages,
    serve,
)
from dynnet_d2.methods.idk.analysis import serving_cascade
from dynnet_d2.methods.idk.build import check_cascade_config, prepare, run_cascade
from dynnet_d2.methods.idk.cascade import (
    accuracy_target,
    grid_threshold,
    stage_differences,
    stage_order_problems,
)
from dynnet_d2.methods.idk.classifiers import MLPIDK, LogisticIDK, ThresholdIDK, entropy
from dynnet_d2.methods.idk.stages import check_calibration_split, check_label_spaces
from dynnet_d2.modeling.flops import static_flops

REPO = Path(__file__).resolve().parents[3]
DIGITS = REPO / "configs/Classification/classifier_R8cifar_200it_digits.yaml"


def one_hot_probs(predictions, confidence, k=3):
    """Probabilities (n, k) whose argmax is ``predictions`` with max ``confidence``."""
    n = len(predictions)
    probs = torch.full((n, k), 0.0)
    for i, (p, c) in enumerate(zip(predictions, confidence)):
        probs[i] = (1 - c) / (k - 1)
        probs[i, p] = c
    return probs


def test_grid_search_picks_the_lowest_idk_rate_that_meets_the_target():
    u = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    here = torch.tensor([True, True, False, True, False])
    down = torch.tensor([True, True, True, False, True])
    # passing {0.5} gives 4/5 right at rate 1/5; {0.3, 0.4, 0.5} also 4/5 but at 3/5
    t = grid_threshold(u, here, down, target=0.8, grid_size=100)
    assert (u > t).tolist() == [False, False, False, False, True]
    # 3/5 needs nothing passed on
    assert not (u > grid_threshold(u, here, down, target=0.6, grid_size=100)).any()
    # 5/5 is out of reach of any threshold: the most accurate (4/5), fewest passed
    t = grid_threshold(u, here, down, target=1.0, grid_size=100)
    assert (u > t).tolist() == [False, False, False, False, True]
    with pytest.raises(ValueError, match="GRID_SIZE=10"):
        grid_threshold(u, here, down, target=0.8, grid_size=10)


def test_two_model_risk_and_gradient_match_eq_4_13_and_4_14():
    h = torch.tensor([0.2, 0.7], requires_grad=True)
    errors = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]
    costs = [torch.tensor([0.1, 0.1]), torch.tensor([1.0, 1.0])]
    risk = cascade_risk([h], errors, costs, lam=0.5)
    # (1 - h) e_fast + h e_acc + lam (c_fast + h c_acc)
    assert risk.tolist() == pytest.approx([0.8 + 0.5 * 0.3, 0.7 + 0.5 * 0.8])
    risk.sum().backward()
    # d/dh = -e_fast + e_acc + lam c_acc
    assert h.grad.tolist() == pytest.approx([-1 + 0.5, 1 + 0.5])


def test_n_model_risk_and_gradient_match_eq_4_15_and_4_16():
    p1 = torch.tensor([0.5], requires_grad=True)
    p2 = torch.tensor([0.25], requires_grad=True)
    errors = [torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0.0])]
    costs = [torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([4.0])]
    risk = cascade_risk([p1, p2], errors, costs, lam=0.1)
    # (1-p1) e1 + p1 (1-p2) e2 + p1 p2 e3 + lam (c1 + p1 c2 + p1 p2 c3)
    assert float(risk.detach()) == pytest.approx(0.5 + 0.375 + 0.0 + 0.1 * (1 + 1 + 0.5))
    risk.sum().backward()
    # d/dp1 = -e1 + (1-p2) e2 + p2 e3 + lam (c2 + p2 c3); d/dp2 = p1 (e3 - e2) + lam p1 c3
    assert float(p1.grad) == pytest.approx(-1 + 0.75 + 0.1 * (2 + 1))
    assert float(p2.grad) == pytest.approx(0.5 * (0 - 1) + 0.1 * 0.5 * 4)
    with pytest.raises(ValueError, match="N - 1, N and N"):
        cascade_risk([p1], errors, costs, lam=0.1)


def test_oracle_cascade_on_a_hand_made_example():
    labels = torch.tensor([0, 1, 2])
    fast = one_hot_probs([0, 0, 0], [0.9, 0.9, 0.9])  # right only on input 0
    accurate = one_hot_probs([1, 1, 1], [0.9, 0.9, 0.9])  # right only on input 1
    data = CascadeData(labels, [fast, accurate],
                       [torch.ones(3, dtype=torch.float64), torch.full((3,), 10.0).double()])
    exits = oracle_exit_stages(data)
    assert exits.tolist() == [0, 1, 0]  # input 2: nobody is right, the cheap stage answers
    result = evaluate_exits(data, exits, reference=1)
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["idk_rate"] == pytest.approx([1 / 3])
    assert result["mean_cost"] == pytest.approx((1 + 11 + 1) / 3)
    assert result["relative_cost"] == pytest.approx(13 / 3 / 10)


def synthetic_data(n=400, stages=(0.7, 0.85, 0.95), k=4, seed=0):
    """Stages that are right with the given rates; a right stage is more confident."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    probs, costs = [], []
    for j, rate in enumerate(stages):
        right = torch.rand(n, generator=g) < rate
        wrong = (labels + 1 + torch.randint(0, k - 1, (n,), generator=g)) % k
        pred = torch.where(right, labels, wrong)
        conf = torch.where(right, 0.5 + 0.5 * torch.rand(n, generator=g),
                           0.3 + 0.4 * torch.rand(n, generator=g))
        probs.append(one_hot_probs(pred.tolist(), conf.tolist(), k))
        costs.append(torch.full((n,), float(4 ** j), dtype=torch.float64))
    return CascadeData(labels, probs, costs)


@pytest.mark.parametrize("method", sorted(name for name, _ in IDK_METHOD_REGISTRY))
@pytest.mark.parametrize("num_stages", [2, 3])
def test_every_registered_method_fits_a_cascade(method, num_stages):
    data = synthetic_data().select(range(3 - num_stages, 3))
    spec = FitSpec(target=accuracy_target(data, 0.01), reference=num_stages - 1, iters=150)
    classifiers = fit_classifiers(method, data, spec)
    assert len(classifiers) == num_stages - 1
    for classifier, probs in zip(classifiers, data.probs):
        h = classifier(probs)
        assert h.shape == probs.shape[:1] and bool(((h >= 0) & (h <= 1)).all())
        if any(True for _ in classifier.parameters()):  # learned: gradients reach it
            classifier.zero_grad()
            classifier(probs).sum().backward()
            assert all(p.grad is not None for p in classifier.parameters())
    result = evaluate_exits(data, exit_stages(data, classifiers), spec.reference)
    if method.endswith(("_grid", "_cost")):  # fitted to the target on this very data
        assert result["accuracy"] >= spec.target - 1e-9
        assert result["relative_cost"] < 1.0  # cheaper than always asking the last stage


def test_cost_aware_fit_trades_accuracy_for_cost_with_lambda():
    data = synthetic_data(stages=(0.8, 0.95))
    rates = []
    for lam in (0.001, 0.3, 5.0):
        spec = FitSpec(target=0.0, reference=1, lam=lam, meet_target=False, iters=300)
        classifiers = fit_classifiers("entropy_cost", data, spec)
        rates.append(evaluate_exits(data, exit_stages(data, classifiers), 1)["idk_rate"][0])
    assert rates[0] > rates[1] > rates[2]
    assert rates[2] == 0.0  # one call of the accurate stage costs more than 1/lam errors


def test_stagewise_and_joint_cost_aware_fits_both_meet_the_target():
    data = synthetic_data()
    target = accuracy_target(data, 0.0)
    for fit in ("joint", "stagewise"):
        spec = FitSpec(target=target, reference=2, fit=fit, iters=200)
        classifiers = fit_classifiers("entropy_cost", data, spec)
        assert evaluate_exits(data, exit_stages(data, classifiers), 2)["accuracy"] >= target
    with pytest.raises(ValueError, match="FIT='sideways'"):
        fit_classifiers("entropy_cost", data, FitSpec(target=target, reference=2,
                                                      fit="sideways"))


def test_threshold_and_learned_classifiers_match_eq_4_3_to_4_6():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    h_expected = torch.tensor([-2 * 0.5 * torch.log(torch.tensor(0.5)),
                               -(0.9 * torch.log(torch.tensor(0.9)) + 0.1 * torch.log(
                                   torch.tensor(0.1)))])
    assert torch.allclose(entropy(probs), h_expected)
    # Eq. 4.3: IDK iff max_j p_j < alpha = 0.7, i.e. 1 - max p > 0.3
    assert ThresholdIDK("prob", 0.3)(probs).tolist() == [1.0, 0.0]
    assert ThresholdIDK("entropy", 0.5)(probs).tolist() == [1.0, 0.0]  # H: 0.69, 0.33
    logistic = LogisticIDK(mean=0.5, std=0.25, a0=-1.0, a1=2.0)
    expected = torch.sigmoid(2.0 * (h_expected - 0.5) / 0.25 - 1.0)
    assert torch.allclose(logistic(probs), expected)
    with pytest.raises(ValueError, match="unknown uncertainty 'margin'"):
        ThresholdIDK("margin", 0.1)


def counting_stage(name, weight, counter, k=3, cost=1.0):
    """A ModuleStage whose logits are a fixed function of the image; it records the image
    values it saw (the inputs are 1x1 images holding their index)."""

    class Counting(nn.Module):
        def forward(self, images):
            counter.append([int(v) for v in images.flatten(1)[:, 0]])
            x = images.flatten(1)[:, :1]
            return torch.cat([torch.sin(weight * x + c) * 3 for c in range(k)], dim=1)

    return ModuleStage(Counting(), name=name, class_names=[str(c) for c in range(k)], cost=cost)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_runner_runs_each_stage_only_on_passed_on_inputs_in_order(batch_size):
    seen = [[], [], []]
    stages = [counting_stage(f"s{j}", w, seen[j], cost=4.0 ** j)
              for j, w in enumerate((1.0, 2.0, 3.0))]
    n = 23
    inputs = [{"image": torch.full((1, 1, 1), float(i)), "label": i % 3, "image_id": i}
              for i in range(n)]
    probs = [s.predict(inputs)[0] for s in stages]
    seen[0].clear(), seen[1].clear(), seen[2].clear()
    labels = torch.tensor([i % 3 for i in range(n)])
    data = CascadeData(labels, probs, [torch.full((n,), 4.0 ** j).double() for j in range(3)])
    classifiers = [ThresholdIDK("prob", 0.45), ThresholdIDK("prob", 0.4)]
    expected_exits = exit_stages(data, classifiers)
    assert 0 < int((expected_exits == 2).sum()) < int((expected_exits >= 1).sum()) < n

    run = serve(stages, classifiers, inputs, batch_size)
    for j in range(3):
        executed = sorted(i for batch in seen[j] for i in batch)
        assert executed == (expected_exits >= j).nonzero().flatten().tolist()
        sizes = [len(batch) for batch in seen[j]]
        assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    assert run.exits.tolist() == expected_exits.tolist()
    index = torch.arange(n)
    expected_probs = torch.stack(probs)[expected_exits, index]
    assert torch.equal(run.probs, expected_probs)  # scattered back to the input order
    assert run.costs.tolist() == evaluate_exits_costs(expected_exits)
    summary = run.summary(labels, 3)
    result = evaluate_exits(data, expected_exits, reference=2)
    assert summary["accuracy"] == pytest.approx(result["accuracy"])
    assert summary["idk_rate"] == pytest.approx(result["idk_rate"])
    assert summary["latency_ms"]["p50"] > 0 and summary["inputs_per_s"] > 0


def evaluate_exits_costs(exits):
    return [sum(4.0 ** j for j in range(int(e) + 1)) for e in exits]


def test_human_expert_is_deterministic_per_image_and_as_accurate_as_asked():
    classes = [str(c) for c in range(5)]
    inputs = [{"image": torch.zeros(1, 1, 1), "label": i % 5, "image_id": f"img{i}"}
              for i in range(2000)]
    perfect = HumanExpertStage(class_names=classes, cost=1.0, accuracy=1.0)
    assert perfect.predict(inputs)[0].argmax(1).tolist() == [i % 5 for i in range(2000)]
    human = HumanExpertStage(class_names=classes, cost=7.0, accuracy=0.7, seed=3)
    probs, costs = human.predict(inputs)
    in_pieces = torch.cat([human.predict(inputs[i:i + 7])[0] for i in range(0, 2000, 7)])
    assert torch.equal(probs, in_pieces)  # independent of batching
    right = (probs.argmax(1) == torch.tensor([i % 5 for i in range(2000)])).float().mean()
    assert abs(float(right) - 0.7) < 0.04
    assert costs.tolist() == [7.0] * 2000
    with pytest.raises(CascadeConfigError, match="ACCURACY=1.5"):
        HumanExpertStage(class_names=classes, cost=1.0, accuracy=1.5)


def test_module_stage_counts_flops_with_fvcore_or_needs_a_cost():
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    stage = ModuleStage(linear, name="lin", class_names=["a", "b", "c"],
                        image_shape=(1, 3, 4))
    assert stage.cost == 12 * 3  # one multiply-add per weight (fvcore's convention)
    assert stage.cost == static_flops(linear, linear, torch.zeros(1, 1, 3, 4))[0]
    scripted = torch.jit.script(linear)
    with pytest.raises(CascadeConfigError, match="give its cost"):
        ModuleStage(scripted, name="ts", class_names=["a", "b", "c"])


@pytest.fixture(scope="module")
def digits_weights(tmp_path_factory):
    """Two untrained digit classifiers (different seeds) saved as checkpoints."""
    folder = tmp_path_factory.mktemp("idk_weights")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model(load_config(str(DIGITS), ["MODEL.DEVICE", "cpu"]))
        (folder / f"m{seed}").mkdir()
        DetectionCheckpointer(model, save_dir=str(folder / f"m{seed}")).save("model_final")
        paths.append(str(folder / f"m{seed}" / "model_final.pth"))
    return paths


def test_model_stage_probabilities_and_executed_flops(digits_weights):
    cfg = load_config(str(DIGITS), ["MODEL.DEVICE", "cpu"])
    stage = ModelStage(cfg, digits_weights[0], name="r8")
    assert stage.class_names == MetadataCatalog.get("digits_train").thing_classes
    assert stage.train_datasets == ("digits_train",)
    inputs = [{"image": torch.randint(0, 255, (1, 8, 8), dtype=torch.uint8), "label": 0,
               "image_id": i} for i in range(3)]
    probs, costs = stage.predict(inputs)
    assert probs.shape == (3, 10) and torch.allclose(probs.sum(1), torch.ones(3))
    model = stage.model
    expected = static_flops(model, lambda x: model.logits(x), torch.zeros(1, 1, 8, 8))[0]
    assert costs.tolist() == pytest.approx([expected] * 3)
    with pytest.raises(CascadeConfigError, match="does not exist"):
        ModelStage(cfg, "/nonexistent/model.pth")
    wide = load_config(str(DIGITS), ["MODEL.DEVICE", "cpu", "MODEL.CIFAR_RESNET.WIDTH", "4"])
    with pytest.raises(ValueError, match="shape|lacks|missing"):
        ModelStage(wide, digits_weights[0])  # weights of another architecture


def test_label_spaces_and_calibration_overlap_are_checked(digits_weights):
    cfg = load_config(str(DIGITS), ["MODEL.DEVICE", "cpu"])
    stage = ModelStage(cfg, digits_weights[0], name="r8")
    check_calibration_split("digits_test", [stage])
    with pytest.raises(CascadeConfigError, match="shares 1497 images with 'digits_train'"):
        check_calibration_split("digits_train", [stage])
    name = "idk_test_empty_calib"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [])
    with pytest.raises(CascadeConfigError, match="is empty"):
        check_calibration_split(name, [stage])
    with pytest.raises(CascadeConfigError, match="same label space"):
        check_label_spaces([stage], ["a", "b"], "other")


def test_cascade_config_errors_name_the_key():
    cfg = load_config(str(DIGITS))
    cfg.CASCADE.STAGES = [str(DIGITS)]
    with pytest.raises(CascadeConfigError, match="needs >= 2"):
        check_cascade_config(cfg)
    cfg.CASCADE.STAGES = [str(DIGITS), str(DIGITS)]
    cfg.CASCADE.WEIGHTS = ["a.pth"]
    with pytest.raises(CascadeConfigError, match="CASCADE.WEIGHTS has 1 entries"):
        check_cascade_config(cfg)
    cfg.CASCADE.WEIGHTS = ["a.pth", "b.pth"]
    cfg.CASCADE.EPSILON = 1.0
    with pytest.raises(ValueError, match=r"EPSILON=1.0: expected a value in \[0, 1\)"):
        check_cascade_config(cfg)
    cfg.CASCADE.EPSILON = 0.0
    for key, value, message in (("METHOD", "coin_flip", "METHOD='coin_flip'"),
                                ("GRID_SIZE", 50, "GRID_SIZE=50"),
                                ("BATCH_SIZE", 0, "BATCH_SIZE=0"),
                                ("MAX_WAIT_MS", -1.0, "MAX_WAIT_MS=-1.0")):
        default = cfg.CASCADE[key]
        cfg.CASCADE[key] = value
        with pytest.raises(ValueError, match=message):
            check_cascade_config(cfg)
        cfg.CASCADE[key] = default
    cfg.CASCADE.CALIB_DATASET = "no_such_split"
    with pytest.raises(CascadeConfigError, match="'no_such_split'"):
        check_cascade_config(cfg)


def test_run_cascade_end_to_end_save_and_reload(digits_weights, tmp_path):
    opts = ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / "run"),
            "CASCADE.STAGES", [str(DIGITS), str(DIGITS)],
            "CASCADE.WEIGHTS", digits_weights, "CASCADE.STAGE_COSTS", [1.0, -1.0],
            "CASCADE.CALIB_DATASET", "digits_test", "CASCADE.TEST_DATASET", "digits_test",
            "CASCADE.METHOD", "entropy_grid", "CASCADE.EPSILON", 0.0,
            "CASCADE.HUMAN.ENABLED", True, "CASCADE.TARGET_ACCURACY", 0.9,
            "CASCADE.BATCH_SIZE", 32, "CASCADE.MAX_WAIT_MS", 5.0]
    overlapping = list(opts)
    overlapping[overlapping.index("CASCADE.CALIB_DATASET") + 1] = "digits_train"
    with pytest.raises(CascadeConfigError, match="shares 1497 images"):
        run_cascade(load_config(str(DIGITS), overlapping))
    cfg = load_config(str(DIGITS), opts)
    result = run_cascade(cfg)
    saved = tmp_path / "run" / "inference" / "results.json"
    assert json.loads(saved.read_text())["cascade"]["accuracy"] == result["accuracy"]
    assert result["accuracy"] >= 0.9 - 1e-9  # the human expert makes the target reachable
    assert len(result["idk_rate"]) == 2 and result["stages"][-1] == "human_expert"
    assert result["reference_stage"] == "human_expert"
    assert result["max_wait_ms"] == 5.0 and result["order_problems"] == []
    cascade_file = tmp_path / "run" / "cascade.json"
    fitted = json.loads(cascade_file.read_text())
    assert [c["type"] for c in fitted["classifiers"]] == ["ThresholdIDK", "ThresholdIDK"]
    # reloading serves the same cascade
    again = run_cascade(load_config(str(DIGITS), opts), str(cascade_file))
    assert again["accuracy"] == result["accuracy"] and again["idk_rate"] == result["idk_rate"]
    other = list(opts)
    other[other.index("CASCADE.WEIGHTS") + 1] = [digits_weights[0], digits_weights[0]]
    with pytest.raises(CascadeConfigError, match="was fitted for other stages: stage 1 ") as e:
        run_cascade(load_config(str(DIGITS), other), str(cascade_file))
    assert "stage 0" not in str(e.value) and "class_names" not in str(e.value)


def test_saved_cascade_round_trip_of_learned_classifiers(tmp_path):
    data = synthetic_data()
    stages = [counting_stage(f"s{j}", 1.0, [], k=4) for j in range(3)]
    spec = FitSpec(target=accuracy_target(data, 0.01), reference=2, iters=100)
    for method in ("entropy_cost", "mlp_oblivious"):
        classifiers = fit_classifiers(method, data, spec)
        path = str(tmp_path / f"{method}.json")
        IDKCascade(stages, classifiers, method=method, fit={"target": spec.target}).save(path)
        loaded = IDKCascade.load(path, stages)
        assert loaded.method == method and loaded.fit == {"target": spec.target}
        for a, b, p in zip(classifiers, loaded.classifiers, data.probs):
            assert torch.allclose(a(p), b(p))
            assert isinstance(b, (LogisticIDK, MLPIDK))
        with pytest.raises(CascadeConfigError, match=r"3 stages \(s0, s1, s2\) in the file, "
                                                     r"2 \(s0, s1\) here"):
            IDKCascade.load(path, stages[:2])


def test_latency_cost_is_measured_per_stage(digits_weights):
    cfg = load_config(str(DIGITS), [
        "MODEL.DEVICE", "cpu", "CASCADE.STAGES", [str(DIGITS), str(DIGITS)],
        "CASCADE.WEIGHTS", digits_weights, "CASCADE.CALIB_DATASET", "digits_test",
        "CASCADE.TEST_DATASET", "digits_test", "CASCADE.COST", "latency"])
    stages, inputs, calib = prepare(cfg)
    assert len(inputs) == len(DatasetCatalog.get("digits_test"))
    for stage, costs in zip(stages, calib.costs):
        assert 0 < stage.cost < 1.0  # seconds per 8x8 image
        assert costs.tolist() == [stage.cost] * len(inputs)


def every_third_passes_stage(name, counter, clock, k=3):
    """A ModuleStage on 1x1 images holding their index: sure of class ``i % k`` except on every
    third input, which it passes on with ThresholdIDK("prob", 0.5); each call advances the fake
    ``clock`` (a one-element list, seconds) by one second."""

    class EveryThird(nn.Module):
        def forward(self, images):
            clock[0] += 1.0
            index = images.flatten(1)[:, 0].long()
            counter.append(index.tolist())
            logits = torch.full((len(index), k), -10.0)
            logits[torch.arange(len(index)), index % k] = 10.0
            logits[index % 3 == 0] = 0.0  # uniform: 1 - max p = 2/3 > 0.5
            return logits

    return ModuleStage(EveryThird(), name=name, class_names=[str(c) for c in range(k)], cost=1.0)


def test_deadline_releases_partial_batches_with_the_same_answers():
    clock = [0.0]
    seen = [[], []]
    stages = [every_third_passes_stage(f"s{j}", seen[j], clock) for j in range(2)]
    inputs = [{"image": torch.full((1, 1, 1), float(i)), "label": i % 3, "image_id": i}
              for i in range(24)]
    classifiers = [ThresholdIDK("prob", 0.5)]
    runs = {}
    for wait in (0.0, 1000.0):
        clock[0] = 0.0
        seen[0].clear(), seen[1].clear()
        runs[wait] = serve(stages, classifiers, inputs, 4, max_wait_ms=wait,
                           clock=lambda: clock[0])
        assert runs[wait].batch_sizes[0] == [4] * 6
    # inputs 0, 3, 6, ... are passed on; stage-0 batch b ends at t = b + 1 without a deadline.
    # No deadline: stage 1 waits for 4 of them (after batches 2 and 5).
    assert runs[0.0].batch_sizes[1] == [4, 4]
    # 1 s deadline: {0, 3} (queued at t=1) are due after batch 1 (t=2) and leave with 6; {9}
    # (queued at t=4) with {12, 15} after batch 3; {18} (t=7) with {21} after batch 5.
    assert runs[1000.0].batch_sizes[1] == [3, 3, 2]
    assert seen[1] == [[0, 3, 6], [9, 12, 15], [18, 21]]
    plain, timed = runs[0.0], runs[1000.0]
    for key in ("predictions", "probs", "exits", "costs"):
        assert torch.equal(getattr(plain, key), getattr(timed, key)), key
    assert plain.exits.tolist() == [int(i % 3 == 0) for i in range(24)]
    assert plain.predictions.tolist() == [i % 3 for i in range(24)]  # in input order
    # input 0 starts at t=0 and is answered at t=4 (no deadline) or t=3 (stage 1 ran at t=2..3)
    assert plain.latency_s[0] == 4.0 and timed.latency_s[0] == 3.0
    assert timed.latency_s.max() < plain.latency_s.max()
    with pytest.raises(ValueError, match="MAX_WAIT_MS=-1"):
        serve(stages, classifiers, inputs, 4, max_wait_ms=-1)


def test_stage_order_problems_name_the_stages():
    labels = torch.tensor([0, 1, 2, 0])
    cheap_right = one_hot_probs([0, 1, 2, 0], [0.9] * 4)  # 4/4
    half_right = one_hot_probs([0, 1, 0, 1], [0.9] * 4)  # 2/4

    def costs(*values):
        return [torch.full((4,), float(v), dtype=torch.float64) for v in values]

    ordered = CascadeData(labels, [half_right, cheap_right], costs(1, 10))
    assert stage_order_problems(ordered, ["a", "b"]) == []
    swapped = CascadeData(labels, [cheap_right, half_right], costs(10, 10))
    assert stage_order_problems(swapped, ["a", "b"]) == [
        "stage 0 'a' (mean cost 10) is not cheaper than stage 1 'b' (10)",
        "stage 0 'a' is more accurate (100.00 %) than the last stage 'b' (50.00 %)"]


def test_run_cascade_refuses_unordered_stages_unless_allowed(digits_weights, tmp_path, caplog):
    # two ResNet-8s of the same width: the "cheap" stage costs as much as the next one
    opts = ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / "run"),
            "CASCADE.STAGES", [str(DIGITS), str(DIGITS)], "CASCADE.WEIGHTS", digits_weights,
            "CASCADE.CALIB_DATASET", "digits_test", "CASCADE.TEST_DATASET", "digits_test",
            "CASCADE.METHOD", "prob_grid"]
    with pytest.raises(CascadeConfigError, match=r"out of order on digits_test: stage 0 "
                       r"'classifier_R8cifar_200it_digits' \(mean cost .*\) is not cheaper.*"
                       r"CASCADE.ALLOW_UNORDERED True"):
        run_cascade(load_config(str(DIGITS), opts))
    assert not (tmp_path / "run" / "cascade.json").exists()  # refused before fitting
    with caplog.at_level(logging.WARNING, logger="dynnet_d2.methods.idk.build"):
        result = run_cascade(load_config(str(DIGITS), opts + ["CASCADE.ALLOW_UNORDERED", True]))
    assert "is not cheaper than stage 1" in result["order_problems"][0]
    assert any("out of order" in r.getMessage() for r in caplog.records)


def test_reloading_a_cascade_names_the_stage_whose_weights_changed(digits_weights, tmp_path):
    cfg = load_config(str(DIGITS), ["MODEL.DEVICE", "cpu"])
    cheap = ModelStage(cfg, digits_weights[0], name="cheap")
    accurate = ModelStage(cfg, digits_weights[1], name="accurate")
    path = str(tmp_path / "cascade.json")
    IDKCascade([cheap, accurate], [ThresholdIDK("prob", 0.3)], method="prob_grid").save(path)
    changed = ModelStage(cfg, digits_weights[0], name="accurate")
    with pytest.raises(CascadeConfigError) as e:
        IDKCascade.load(path, [cheap, changed])
    difference = (f"stage 1 'accurate' (weights_sha256 {accurate.weights_sha256[:12]}... in the "
                  f"file, {cheap.weights_sha256[:12]}... here)")
    assert str(e.value) == (f"cascade file {path!r} was fitted for other stages: {difference}; "
                            f"fit it again for these stages")
    assert stage_differences([cheap.describe()], [cheap.describe()]) == ""


def test_served_cascade_is_chosen_on_the_calibration_split():
    def row(method, eps, calib_acc, calib_cost, test_acc, test_cost):
        return {"method": method, "epsilon": eps, "calib_accuracy": calib_acc,
                "calib_relative_cost": calib_cost, "accuracy": test_acc,
                "relative_cost": test_cost}

    entry = {"reference_calib_accuracy": 0.93, "reference_test_accuracy": 0.92, "rows": [
        # meets the reference on test and is the cheapest there, but misses it on calib
        row("prob_grid", 0.0, 0.925, 0.10, 0.935, 0.10),
        # meets it on calib, the cheapest there
        row("entropy_grid", 0.0, 0.93, 0.20, 0.91, 0.15),
        # meets it on calib (and test, at the lowest test cost), dearer on calib
        row("entropy_cost", 0.0, 0.931, 0.30, 0.95, 0.05),
        # cheapest on calib, but fitted to eps = 0.5 %
        row("prob_grid", 0.005, 0.94, 0.01, 0.94, 0.01),
    ]}
    assert serving_cascade(entry)["method"] == "entropy_grid"
    entry["reference_calib_accuracy"] = 0.99  # nothing meets it: the most accurate on calib
    assert serving_cascade(entry)["method"] == "entropy_cost"
    del entry["rows"][1]["calib_relative_cost"]
    with pytest.raises(ValueError, match=r"\['entropy_grid'\] have no calib_relative_cost"):
        serving_cascade(entry)


def test_benchmark_builds_each_stage_from_its_runs_config_yaml(tmp_path):
    # a run of the arm "R8_plain" trained with an option its arm table entry lacks (width 4)
    assert "MODEL.CIFAR_RESNET.WIDTH" not in benchmark.ARMS["R8_plain"].opts
    run = tmp_path / "R8_plain"
    run.mkdir()
    cfg = load_config(str(DIGITS), ["MODEL.DEVICE", "cpu", "MODEL.CIFAR_RESNET.WIDTH", 4,
                                    "OUTPUT_DIR", str(run)])
    (run / "config.yaml").write_text(cfg.dump())
    DetectionCheckpointer(build_model(cfg), save_dir=str(run)).save("model_final")
    stage = benchmark.build_stage("R8_plain", tmp_path, "cpu")  # strict load: the weights fit
    assert stage.cfg.MODEL.CIFAR_RESNET.WIDTH == 4
    assert stage.model.head.in_features == 4 * 4  # width x 4 after the third stage
    assert stage.cfg.DATASETS.TRAIN == ("digits_train",)
    inputs = [{"image": torch.zeros((1, 8, 8), dtype=torch.uint8), "label": 0, "image_id": 0}]
    assert stage.predict(inputs)[0].shape == (1, 10)
    with pytest.raises(FileNotFoundError, match=r"R38s1_plain/config.yaml does not exist"):
        benchmark.build_stage("R38s1_plain", tmp_path, "cpu")
