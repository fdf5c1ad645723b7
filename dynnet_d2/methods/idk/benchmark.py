"""IDK cascade benchmark on Fashion-MNIST (projects/IDK/README.md; tools/benchmark_idk.py is its
command line): train the stages, fit every IDK method on fashion_mnist_calib, evaluate on
fashion_mnist_test, time the cascades chosen on fashion_mnist_calib, plots and Markdown tables.

Stages: logistic regression on pixels (trained here by L-BFGS, served as a TorchScript file
with its fvcore FLOPs), a plain ResNet-8 (stride-2 stem), a plain ResNet-38 and a SkipNet-38
(RNN gate, SP) with a stride-1 stem. Every model trains on fashion_mnist_train only, as an arm of
:func:`dynnet_d2.engine.arms.train_arms` (one at a time, two threads) into ``<work>/<arm>``; a
finished arm (``inference/results.json``) is not trained again, an interrupted one resumes.
Every evaluation and timing builds an arm's stage from the ``config.yaml`` its training run
wrote (:func:`dynnet_d2.engine.runs.run_config`, not from the arm table), its weights loaded
strictly. Stage outputs are cached per split under ``<work>/outputs``, fitted cascades saved
under ``<work>/cascades``. The cascade timed per stage list is the eps = 0 fit cheapest on the
calibration split among those meeting the reference's calibration accuracy
(:func:`~dynnet_d2.methods.idk.analysis.serving_cascade`); at batch 64 it is also timed with a
deadline for partial batches (``max_wait_ms``). The JSON is rewritten atomically after every
phase (:func:`run`).
"""
import json
import time
from pathlib import Path

import torch
from detectron2.data import MetadataCatalog

from ...data.classification import map_for_inference
from ...engine.arms import Arm, machine, train_arms, write_record
from ...engine.runs import run_config
from ...modeling.flops import static_flops
from .analysis import (
    plot_cost_accuracy,
    plot_entropy_distributions,
    serving_cascade,
    threshold_curve,
    time_serving,
    train_pixel_logistic_regression,
)
from .build import collect
from .cascade import (
    CascadeData,
    FitSpec,
    IDKCascade,
    evaluate_exits,
    exit_stages,
    fit_classifiers,
    oracle_exit_stages,
    reference_stage,
)
from .classifiers import entropy
from .stages import (
    HumanExpertStage,
    ModelStage,
    ModuleStage,
    check_calibration_split,
    check_label_spaces,
)

R8 = "configs/Classification/classifier_R8cifar_3000it_fashionmnist.yaml"
R38 = "configs/Classification/classifier_R38cifar_3000it_fashionmnist.yaml"
SP38 = "configs/SkipNet/skipnet_R38cifar_sp_3000it_fashionmnist.yaml"
STRIDE1 = ["MODEL.CIFAR_RESNET.STEM_STRIDE", "1"]
ARMS = {
    "R8_plain": Arm(R8),
    "R38s1_plain": Arm(R38, STRIDE1),
    "R38s1_rnn_SP": Arm(SP38, STRIDE1),
}
LINEAR = "linear"
# name -> stages (cheapest first); the last model is the reference "accurate" model.
CASCADES = {
    "R8>R38s1": ["R8_plain", "R38s1_plain"],
    "R8>SkipNet38s1": ["R8_plain", "R38s1_rnn_SP"],
    "linear>R38s1": [LINEAR, "R38s1_plain"],
    "linear>R8>R38s1": [LINEAR, "R8_plain", "R38s1_plain"],
}
EPSILONS = (0.0, 0.005, 0.01)
TARGETED = ("prob_grid", "entropy_grid", "entropy_cost", "mlp_cost")
OBLIVIOUS = ("entropy_oblivious", "mlp_oblivious")
# human-in-the-loop (Table 4.3): the expert costs 100x the accurate model; absolute targets.
HUMAN_CASCADES = {"R38s1>human": ["R38s1_plain"],
                  "R8>R38s1>human": ["R8_plain", "R38s1_plain"]}
HUMAN_TARGETS = (1.0, 0.99, 0.95)
HUMAN_COST_FACTOR = 100.0
SPLITS = {"calib": "fashion_mnist_calib", "test": "fashion_mnist_test",
          "train": "fashion_mnist_train"}
TRAIN_SUBSET = 5000  # training images whose entropy is plotted (Fig. 4.5)


def mapped(dataset: str, work: Path, limit: int = 0):
    """``dataset`` mapped for inference as the ResNet-8 run reads images."""
    return map_for_inference(run_config(work / "R8_plain"), dataset, limit)


def train_linear(work: Path, record: dict) -> None:
    folder = work / LINEAR
    if (folder / "stage.json").is_file():
        return
    inputs = mapped(SPLITS["train"], work)
    images = torch.stack([d["image"] for d in inputs])
    labels = torch.tensor([d["label"] for d in inputs])
    start = time.perf_counter()
    model = train_pixel_logistic_regression(images, labels, 10)
    seconds = time.perf_counter() - start
    flops, _ = static_flops(model, model, images[:1].float())
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model).save(str(folder / "model.ts"))
    info = {"flops": flops, "train_s": round(seconds, 1), "train_dataset": SPLITS["train"]}
    write_record(folder / "stage.json", info)
    record["runs"][LINEAR] = info


def build_stage(name: str, work: Path, device: str):
    """The stage of arm ``name`` (or the linear model) as trained in ``work``."""
    if name == LINEAR:
        info = json.loads((work / LINEAR / "stage.json").read_text())
        module = torch.jit.load(str(work / LINEAR / "model.ts"), map_location=device)
        return ModuleStage(module, name=LINEAR, cost=info["flops"],
                           class_names=MetadataCatalog.get(SPLITS["train"]).thing_classes,
                           train_datasets=[info["train_dataset"]])
    return ModelStage(run_config(work / name, device), str(work / name / "model_final.pth"),
                      name=name)


def collect_outputs(stages, work: Path, record: dict):
    """{split: {stage: (probs, costs)}} cached in ``work/outputs``, with the checks first."""
    check_label_spaces(stages.values(), MetadataCatalog.get(SPLITS["calib"]).thing_classes,
                       SPLITS["calib"])
    check_calibration_split(SPLITS["calib"], list(stages.values()))
    folder = work / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    outputs, labels = {}, {}
    for split, dataset in SPLITS.items():
        inputs = None
        outputs[split] = {}
        for name, stage in stages.items():
            path = folder / f"{name}_{split}.pt"
            if not path.is_file():
                inputs = inputs or mapped(dataset, work,
                                          TRAIN_SUBSET if split == "train" else 0)
                data = collect([stage], inputs, 256)
                torch.save({"probs": data.probs[0], "costs": data.costs[0],
                            "labels": data.labels}, str(path))
            saved = torch.load(str(path))
            outputs[split][name] = (saved["probs"], saved["costs"])
            labels[split] = saved["labels"]
    record["stages"] = {
        name: {"test_top1": float((outputs["test"][name][0].argmax(1) == labels["test"])
                                  .double().mean()),
               "calib_top1": float((outputs["calib"][name][0].argmax(1) == labels["calib"])
                                   .double().mean()),
               "mflops": float(outputs["test"][name][1].mean()) / 1e6}
        for name in stages}
    return outputs, labels


def cascade_data(outputs, labels, split, names, human=None):
    probs = [outputs[split][n][0] for n in names]
    costs = [outputs[split][n][1] for n in names]
    if human is not None:
        classes = [str(c) for c in range(probs[0].shape[1])]
        expert = HumanExpertStage(class_names=classes, cost=human, accuracy=1.0)
        fake = [{"label": int(y), "image_id": i} for i, y in enumerate(labels[split])]
        p, c = expert.predict(fake)
        probs, costs = probs + [p], costs + [c]
    return CascadeData(labels[split], probs, costs)


def fit_and_evaluate(calib, test, method, target, work, name, stages, tag, **spec_kwargs):
    reference = reference_stage(calib)
    spec = FitSpec(target=target, reference=reference, **spec_kwargs)
    start = time.perf_counter()
    classifiers = fit_classifiers(method, calib, spec)
    fit_s = time.perf_counter() - start
    if stages is not None:
        IDKCascade(stages, classifiers, method=method, fit={"target": target}).save(
            str(work / "cascades" / f"{name}_{tag}.json"))
    calib_result = evaluate_exits(calib, exit_stages(calib, classifiers), reference)
    result = evaluate_exits(test, exit_stages(test, classifiers), len(test.probs) - 1)
    return {**result, "calib_accuracy": calib_result["accuracy"],
            "calib_idk_rate": calib_result["idk_rate"],
            "calib_relative_cost": calib_result["relative_cost"], "fit_s": round(fit_s, 2),
            "mean_mflops": result["mean_cost"] / 1e6}


def tables(outputs, labels, stages, work: Path, record: dict) -> None:
    (work / "cascades").mkdir(parents=True, exist_ok=True)
    record["cascades"] = {}
    for name, names in CASCADES.items():
        calib = cascade_data(outputs, labels, "calib", names)
        test = cascade_data(outputs, labels, "test", names)
        ref_test = test.accuracies()[-1]
        ref_calib = max(calib.accuracies())
        rows = []
        for eps in EPSILONS:
            for method in TARGETED:
                row = fit_and_evaluate(calib, test, method, (1 - eps) * ref_calib, work, name,
                                       [stages[n] for n in names], f"{method}_eps{eps}")
                rows.append({"method": method, "epsilon": eps,
                             "desired_accuracy": (1 - eps) * ref_test, **row})
        lam = fit_and_evaluate(calib, test, "entropy_cost", 0.0, work, name, None, "",
                               meet_target=False)
        rows.append({"method": "entropy_cost_lambda0.04", "epsilon": None, **lam})
        if len(names) > 2:
            for eps in EPSILONS:
                row = fit_and_evaluate(calib, test, "entropy_cost", (1 - eps) * ref_calib,
                                       work, name, [stages[n] for n in names],
                                       f"entropy_cost_stagewise_eps{eps}", fit="stagewise")
                rows.append({"method": "entropy_cost_stagewise", "epsilon": eps,
                             "desired_accuracy": (1 - eps) * ref_test, **row})
        for method in OBLIVIOUS:
            row = fit_and_evaluate(calib, test, method, 0.0, work, name,
                                   [stages[n] for n in names], method)
            rows.append({"method": method, "epsilon": None, **row})
        oracle = evaluate_exits(test, oracle_exit_stages(test), len(names) - 1)
        rows.append({"method": "oracle", "epsilon": None, **oracle,
                     "mean_mflops": oracle["mean_cost"] / 1e6})
        entry = {"stages": names, "reference_test_accuracy": ref_test,
                 "reference_calib_accuracy": ref_calib, "rows": rows}
        if len(names) == 2:
            entry["curves"] = {kind: threshold_curve(test, kind, 1)
                               for kind in ("prob", "entropy")}
        record["cascades"][name] = entry
    record["human"] = {}
    for name, names in HUMAN_CASCADES.items():
        human_cost = HUMAN_COST_FACTOR * float(outputs["test"][names[-1]][1].mean())
        calib = cascade_data(outputs, labels, "calib", names, human=human_cost)
        test = cascade_data(outputs, labels, "test", names, human=human_cost)
        rows = []
        for target in HUMAN_TARGETS:
            for method in ("prob_grid", "entropy_grid", "entropy_cost"):
                row = fit_and_evaluate(calib, test, method, target, work, name, None, "")
                rows.append({"method": method, "desired_accuracy": target, **row})
        record["human"][name] = {"stages": names + ["human"], "rows": rows,
                                 "human_cost_factor": HUMAN_COST_FACTOR}


def timing(stages, work: Path, record: dict, repeats: int, device: str, batch1_images: int,
           max_wait_ms: float):
    """Serving throughput and latency of the cascades chosen on the calibration split and of
    their reference alone, at batch 1 and at batch 64 (there also with ``max_wait_ms`` > 0)."""
    inputs = mapped(SPLITS["test"], work)
    arms, deadline_arms = {}, {}
    for name in ("R8>R38s1", "R8>SkipNet38s1", "linear>R8>R38s1"):
        entry = record["cascades"][name]
        tag = f"{serving_cascade(entry)['method']}_eps0.0"
        names = entry["stages"]
        cascade = IDKCascade.load(str(work / "cascades" / f"{name}_{tag}.json"),
                                  [stages[n] for n in names])
        arms[f"{name} ({tag})"] = (cascade.stages, cascade.classifiers)
        if max_wait_ms > 0:
            deadline_arms[f"{name} ({tag}) wait <= {max_wait_ms:g} ms"] = (
                cascade.stages, cascade.classifiers, max_wait_ms)
        arms.setdefault(f"{names[-1]} alone", ([stages[names[-1]]], []))
    record["timing"] = {"device": device, "threads": torch.get_num_threads(),
                        "repeats": repeats, "max_wait_ms": max_wait_ms}
    # a deadline changes nothing at batch 1 (every batch is full)
    for batch, images, batch_arms in ((1, batch1_images, arms),
                                      (64, len(inputs), {**arms, **deadline_arms})):
        record["timing"][f"batch{batch}"] = {"num_inputs": images, **time_serving(
            batch_arms, inputs[:images], batch, repeats)}


def plots(outputs, labels, record: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    plot_entropy_distributions(
        {name: {f"{split} ({SPLITS[split]})": entropy(outputs[split][name][0]).numpy()
                for split in ("train", "calib", "test")} for name in ("R8_plain", "R38s1_plain")},
        str(folder / "entropy_train_vs_heldout.png"))
    for name in ("R8>R38s1", "linear>R38s1"):
        entry = record["cascades"][name]
        points = {f"{r['method']} eps=0": (r["relative_cost"], r["accuracy"])
                  for r in entry["rows"] if r.get("epsilon") == 0.0}
        points.update({r["method"]: (r["relative_cost"], r["accuracy"]) for r in entry["rows"]
                       if r["method"] in OBLIVIOUS + ("oracle",)})
        plot_cost_accuracy({f"{k} threshold sweep": v for k, v in entry["curves"].items()},
                           points, entry["reference_test_accuracy"],
                           str(folder / f"cost_accuracy_{name.replace('>', '_')}.png"),
                           f"{name} on fashion_mnist_test")


def report(record: dict) -> str:
    lines = []
    for name, entry in record.get("cascades", {}).items():
        lines += [f"\n#### {name} (reference test top-1 "
                  f"{100 * entry['reference_test_accuracy']:.2f} %)\n",
                  "| method | eps | desired acc (%) | acc (%) | IDK rate (%) | avg MFLOPs | "
                  "relative cost |", "|---|---|---|---|---|---|---|"]
        for r in entry["rows"]:
            desired = (f"{100 * r['desired_accuracy']:.2f}" if r.get("desired_accuracy")
                       else "-")
            eps = "-" if r.get("epsilon") is None else f"{100 * r['epsilon']:g} %"
            idk = " / ".join(f"{100 * v:.1f}" for v in r["idk_rate"])
            lines.append(f"| {r['method']} | {eps} | {desired} | {100 * r['accuracy']:.2f} | "
                         f"{idk} | {r['mean_mflops']:.2f} | {r['relative_cost']:.3f} |")
    for name, entry in record.get("human", {}).items():
        lines += [f"\n#### {name}\n", "| method | desired acc (%) | acc (%) | IDK rate (%) | "
                  "relative cost |", "|---|---|---|---|---|"]
        for r in entry["rows"]:
            idk = " / ".join(f"{100 * v:.1f}" for v in r["idk_rate"])
            lines.append(f"| {r['method']} | {100 * r['desired_accuracy']:.0f} | "
                         f"{100 * r['accuracy']:.2f} | {idk} | {r['relative_cost']:.3f} |")
    t = record.get("timing")
    if t:
        lines += [f"\n#### Serving ({t['device']}, {t['threads']} threads)\n",
                  "| arm | batch | max wait (ms) | acc (%) | inputs/s | "
                  "p50 / p99 latency (ms) |", "|---|---|---|---|---|---|"]
        for key in ("batch1", "batch64"):
            for arm, r in t.get(key, {}).items():
                if isinstance(r, dict):
                    wait = f"{r['max_wait_ms']:g}" if r.get("max_wait_ms") else "-"
                    lines.append(f"| {arm} | {key[5:]} | {wait} | {100 * r['accuracy']:.2f} | "
                                 f"{r['inputs_per_s']:.0f} | {r['latency_ms']['p50']:.2f} / "
                                 f"{r['latency_ms']['p99']:.2f} |")
    return "\n".join(lines)


def train_stages(work: Path, record: dict, out: Path) -> None:
    """Train the arms, then the linear model; ``RuntimeError`` naming the arms that failed (every
    stage is needed)."""
    status = train_arms(ARMS, work, record, out, workers=1, threads=2)
    failed = {name: record["runs"][name]["error"] for name, ok in status.items() if not ok}
    if failed:
        raise RuntimeError(f"arms failed, every stage is needed: {failed}")
    train_linear(work, record)
    write_record(out, record)


def run(record: dict, out: Path, work: Path, *, plots_dir: Path, repeats: int, threads: int,
        batch1_images: int, max_wait_ms: float, device: str, timing_only: bool) -> None:
    """The benchmark into ``record`` (written to ``out`` after every phase): train the stages,
    fit and evaluate the cascades and draw the plots (unless ``timing_only``: the cascades saved
    in ``work`` by an earlier run), time them on ``device`` with ``threads`` intra-op threads."""
    record["machine"] = {**machine(), "device": torch.cuda.get_device_name()
                         if device == "cuda" else "cpu"}
    if not timing_only:
        train_stages(work, record, out)
    stages = {name: build_stage(name, work, device) for name in [LINEAR, *ARMS]}
    if not timing_only:
        outputs, labels = collect_outputs(stages, work, record)
        tables(outputs, labels, stages, work, record)
        write_record(out, record)
        plots(outputs, labels, record, plots_dir)
    torch.set_num_threads(threads)
    timing(stages, work, record, repeats, device, batch1_images, max_wait_ms)
    write_record(out, record)
