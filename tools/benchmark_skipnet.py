#!/usr/bin/env python
"""SkipNet benchmark on Fashion-MNIST (projects/SkipNet/README.md): train every arm, then measure
accuracy, executed FLOPs and wall-clock time of all of them in one process on the same images.

    python tools/benchmark_skipnet.py --output benchmarks/skipnet_fashionmnist_2cpu.json

Arms per depth (38 and 74 by default): the plain ResNet, SkipNet with FFGate-I and with the RNN
gate after supervised pre-training (SP) and after hybrid RL from it (HRL+SP, the thesis'
relaxed reward with beta = alpha / N, as the reference's ImageNet script); at depth 38 also an
alpha sweep of RNN-gate HRL with the prediction loss' weight fixed, beta = 1 (the reward of the
reference's CIFAR script, R = -L + alpha / N sum skips: with beta = alpha / N, alpha would only
scale the policy step, not trade accuracy for compute), HRL at the thesis' learning rate 1e-4,
and the SOFT-gate and SDV baselines (SDV skips at random at the rate the HRL model learned).
Every arm trains with tools/train_net.py into ``--work-dir/<arm>``; an arm whose
``inference/results.json`` exists is not trained again, an interrupted one resumes from its last
checkpoint, and a failed one is recorded without stopping the others. Every evaluation and
timing builds an arm's model from the ``config.yaml`` its training wrote and loads its weights
strictly (:func:`dynnet_d2.engine.runs.load_trained_model`).

Then, in one process: per arm the top-1 and the mean executed GFLOPs on the whole test set; per
depth and per intra-op thread count, milliseconds per image at batch 1 and batch 64 of the
plain ResNet and of each SkipNet with real skipping ("skip") and computed the reference way
("mask"), the models interleaved over ``--repeats`` rounds; per-class skip-ratio plots and the
accuracy-vs-FLOPs plot. The JSON is rewritten (atomically) after every step.
"""
import argparse
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
PLAIN = "configs/Classification/classifier_R38cifar_3000it_fashionmnist.yaml"
SP = "configs/SkipNet/skipnet_R38cifar_sp_3000it_fashionmnist.yaml"
HRL = "configs/SkipNet/skipnet_R38cifar_hrl_1000it_fashionmnist.yaml"
# The alpha sweep, beta = 1 (the reference's CIFAR reward); alpha 0: the policy sees the prediction
# loss only, no reward for skipping.
ALPHAS = (0.0, 0.1, 0.5, 1.0, 2.0, 4.0)
SWEEP_BETA = 1.0


def sweep_arm(depth: int, alpha: float) -> str:
    return f"R{depth}_rnn_HRL_beta{SWEEP_BETA:g}_alpha{alpha}"


def arms(depths, alpha_sweep: bool, baselines: bool):
    """name -> {"config", "opts", "after"} in the order they should start (longest first)."""
    table = {}
    for depth in sorted(depths, reverse=True):
        d = ["MODEL.CIFAR_RESNET.DEPTH", str(depth)]
        table[f"R{depth}_plain"] = {"config": PLAIN, "opts": d}
        for gate in ("ffgate1", "rnn"):
            g = d + ["MODEL.SKIPNET.GATE_TYPE", gate]
            table[f"R{depth}_{gate}_SP"] = {"config": SP, "opts": g}
            table[f"R{depth}_{gate}_HRL"] = {"config": HRL, "opts": g,
                                             "after": f"R{depth}_{gate}_SP"}
    low = min(depths)
    if alpha_sweep:
        for alpha in ALPHAS:
            table[sweep_arm(low, alpha)] = {
                "config": HRL, "after": f"R{low}_rnn_SP",
                "opts": ["MODEL.CIFAR_RESNET.DEPTH", str(low), "MODEL.SKIPNET.ALPHA", str(alpha),
                         "MODEL.SKIPNET.BETA", str(SWEEP_BETA)]}
        # the thesis' refinement learning rate (1e-4; the HRL config uses 1e-3), and at it with
        # BatchNorm statistics updated from the executed inputs (the reference's way)
        table[f"R{low}_rnn_HRL_lr0.0001"] = {
            "config": HRL, "after": f"R{low}_rnn_SP",
            "opts": ["MODEL.CIFAR_RESNET.DEPTH", str(low), "SOLVER.BASE_LR", "0.0001"]}
        table[f"R{low}_rnn_HRL_lr0.0001_bn_updated"] = {
            "config": HRL, "after": f"R{low}_rnn_SP",
            "opts": ["MODEL.CIFAR_RESNET.DEPTH", str(low), "SOLVER.BASE_LR", "0.0001",
                     "MODEL.SKIPNET.HRL_FREEZE_BN", "False"]}
    if baselines:
        table[f"R{low}_rnn_SOFT"] = {"config": SP, "opts": ["MODEL.CIFAR_RESNET.DEPTH", str(low),
                                                           "MODEL.SKIPNET.STAGE", "SOFT"]}
        table[f"R{low}_SDV"] = {"config": SP, "after": f"R{low}_rnn_HRL",
                                "sdv_of": f"R{low}_rnn_HRL",
                                "opts": ["MODEL.CIFAR_RESNET.DEPTH", str(low),
                                         "MODEL.SKIPNET.STAGE", "SDV"]}
    return table


def trained_model(work_dir: Path, name: str):
    """Arm ``name``'s model as its run in ``work_dir`` trained it (its config.yaml, its weights
    loaded strictly), in eval mode on the CPU."""
    from dynnet_d2.engine.runs import load_trained_model

    return load_trained_model(work_dir / name)[1]


def test_images(dataset: str, config: str):
    from detectron2.data import DatasetCatalog

    from dynnet_d2.config import load_config
    from dynnet_d2.data.classification import ClassificationMapper

    mapper = ClassificationMapper(load_config(str(REPO / config)), is_train=False)
    mapped = [mapper(r) for r in DatasetCatalog.get(dataset)]
    return (torch.stack([m["image"] for m in mapped]),
            torch.tensor([m["label"] for m in mapped]))


def write(path: Path, record: dict) -> None:
    from dynnet_d2.utils.io import atomic_write_json

    atomic_write_json(str(path), record, indent=2)


def train_all(table, work_dir: Path, record: dict, out: Path, workers: int, sdv_rate) -> None:
    """Train every arm (dependencies first), ``workers`` processes of one thread each."""
    from dynnet_d2.utils.measure import measure_train_net

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    status = {}

    def train(name):
        arm = table[name]
        folder = work_dir / name
        if (folder / "inference" / "results.json").is_file():
            return record["runs"].get(name) or {"skipped": "finished before"}
        opts = list(arm["opts"]) + ["OUTPUT_DIR", str(folder)]
        if "after" in arm:
            opts += ["MODEL.WEIGHTS", str(work_dir / arm["after"] / "model_final.pth")]
        if "sdv_of" in arm:
            opts += ["MODEL.SKIPNET.SDV_SKIP_RATE", str(sdv_rate(arm["sdv_of"]))]
        cmd = [sys.executable, str(REPO / "tools/train_net.py"), "--config-file",
               str(REPO / arm["config"])]
        if (folder / "last_checkpoint").is_file():
            cmd.append("--resume")
        return measure_train_net(cmd + opts, folder, folder / "benchmark.log", cwd=REPO, env=env)

    pending, running = list(table), {}
    with ThreadPoolExecutor(workers) as pool:
        while pending or running:
            for name in list(pending):
                dep = table[name].get("after")
                if dep and status.get(dep) is False:
                    pending.remove(name)
                    status[name] = False
                    record["runs"][name] = {"error": f"not run: {dep} failed"}
                elif (not dep or status.get(dep)) and len(running) < workers:
                    pending.remove(name)
                    running[pool.submit(train, name)] = name
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    result = future.result()
                except Exception as e:  # a failed arm is recorded; the others go on
                    result = {"error": f"{type(e).__name__}: {e}"}
                status[name] = "error" not in result
                record["runs"][name] = result
                print(f"[{time.strftime('%H:%M:%S')}] {name}: "
                      f"{'ok' if status[name] else result['error']}", flush=True)
                write(out, record)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="benchmarks/skipnet_fashionmnist_2cpu.json")
    parser.add_argument("--work-dir", default="output/SkipNet/benchmark")
    parser.add_argument("--depths", type=int, nargs="+", default=[38, 74])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="intra-op thread counts to time with")
    parser.add_argument("--batch1-images", type=int, default=1000)
    parser.add_argument("--no-alpha-sweep", action="store_true")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--timing-only", action="store_true", help="skip training")
    parser.add_argument("--report-only", action="store_true",
                        help="only the summary, plots and Markdown tables of --output")
    parser.add_argument("--plots-dir", default="projects/SkipNet")
    args = parser.parse_args()

    import dynnet_d2  # noqa: F401  (registers datasets and models)

    out, work_dir = REPO / args.output, REPO / args.work_dir
    record = json.loads(out.read_text()) if out.is_file() else {}
    record.setdefault("runs", {})
    table = arms(args.depths, not args.no_alpha_sweep, not args.no_baselines)
    if not args.report_only:
        record["machine"] = {"cpu_count": os.cpu_count(), "torch": torch.__version__}
        measure(args, table, record, out, work_dir)
    summarize(record, args.depths, args.threads)
    write(out, record)
    report(record, args)


def measure(args, table, record: dict, out: Path, work_dir: Path) -> None:
    """Train the arms (unless ``--timing-only``), then evaluate and time them."""
    from dynnet_d2.modeling.skipnet.analysis import (
        run_gated,
        skip_ratio_per_class,
        time_variants,
    )

    images, labels = test_images("fashion_mnist_test", PLAIN)
    models = {}

    def model_of(name):
        if name not in models:
            models[name] = trained_model(work_dir, name)
        return models[name]

    def sdv_rate(name):
        decisions = run_gated(model_of(name), images[:2000])["decisions"]
        return round(1.0 - float(decisions.float().mean()), 4)

    if not args.timing_only:
        torch.set_num_threads(1)
        train_all(table, work_dir, record, out, args.workers, sdv_rate)
        torch.set_num_threads(2)
    trained = [n for n in table if (work_dir / n / "model_final.pth").is_file()]
    evaluation = record.setdefault("evaluation", {})
    for name in trained:
        run = run_gated(model_of(name), images)
        evaluation[name] = {
            "top1": round(100.0 * float((run["predictions"] == labels).float().mean()), 2),
            "mean_gflops": float(run["gflops"].mean()),
            "executed_block_fraction": (float(run["decisions"].float().mean())
                                        if run["decisions"].numel() else 1.0),
        }
        if run["decisions"].numel():
            ratios = skip_ratio_per_class(run["decisions"], labels, 10)
            evaluation[name]["skip_ratio_per_class"] = ratios.round(3).tolist()
    write(out, record)

    timing = record.setdefault("timing", {})
    for depth in args.depths:
        plain = f"R{depth}_plain"
        if plain not in trained:
            continue
        variants = {plain: (model_of(plain), None)}
        for name in [n for n in trained if n.startswith(f"R{depth}_") and n != plain]:
            for mode in ("skip", "mask"):
                variants[f"{name}:{mode}"] = (model_of(name), mode)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for batch, count in ((1, args.batch1_images), (64, len(images))):
                timing[f"R{depth}_batch{batch}_threads{threads}"] = time_variants(
                    variants, images[:count], batch, args.repeats)
                for model, mode in variants.values():
                    if mode is not None:
                        model.backbone.inference = "skip"
                write(out, record)


def report(record: dict, args) -> None:
    """Plots (per-class skip ratios, accuracy vs FLOPs) and Markdown tables of ``record``."""
    import numpy as np
    from detectron2.data import MetadataCatalog

    from dynnet_d2.modeling.skipnet.analysis import (
        plot_accuracy_vs_flops,
        plot_skip_ratio_per_class,
    )

    evaluation = record.get("evaluation", {})
    plots = REPO / args.plots_dir
    plots.mkdir(parents=True, exist_ok=True)
    names = [str(c) for c in MetadataCatalog.get("fashion_mnist_test").thing_classes]
    for name in [n for n in evaluation if n.endswith(("_rnn_HRL", "_rnn_SP"))]:
        depth = int(name[1:].split("_")[0])
        n = (depth - 2) // 6
        plot_skip_ratio_per_class(
            np.array(evaluation[name]["skip_ratio_per_class"], dtype=float), names, [n, n, n],
            str(plots / f"skip_ratio_{name}.png"),
            f"SkipNet-{depth} ({name}): per-block skip ratio per class, Fashion-MNIST test")
    low = min(args.depths)
    sweep = {sweep_arm(low, a): a for a in ALPHAS if sweep_arm(low, a) in evaluation}
    if sweep and f"R{low}_plain" in evaluation:
        base = evaluation[f"R{low}_plain"]
        points = [{"label": f"a={alpha}", "top1": evaluation[n]["top1"],
                   "relative_flops": evaluation[n]["mean_gflops"] / base["mean_gflops"]}
                  for n, alpha in sorted(sweep.items(), key=lambda item: item[1])]
        if f"R{low}_rnn_SP" in evaluation:
            sp = evaluation[f"R{low}_rnn_SP"]
            points.insert(0, {"label": "SP", "top1": sp["top1"],
                              "relative_flops": sp["mean_gflops"] / base["mean_gflops"]})
        plot_accuracy_vs_flops(points, str(plots / f"accuracy_vs_flops_R{low}.png"),
                               f"SkipNet-{low} RNN gate: SP, then HRL over alpha, beta = "
                               f"{SWEEP_BETA:g} (Fashion-MNIST test)",
                               reference={"label": f"plain ResNet-{low}", "top1": base["top1"]})
    print(markdown_tables(record, args.threads))


def markdown_tables(record: dict, threads) -> str:
    """The README's tables: accuracy and FLOPs per arm; measured time relative to the plain
    ResNet per thread count (batch 1 and 64, skipping and masking)."""
    evaluation, summary = record.get("evaluation", {}), record.get("summary", {})
    lines = ["| arm | top-1 (%) | MFLOPs / image | FLOPs vs plain | blocks executed |",
             "|---|---|---|---|---|"]
    for name, ev in evaluation.items():
        row = summary.get(name, {})
        lines.append(f"| {name} | {ev['top1']:.2f} | {1e3 * ev['mean_gflops']:.2f} | "
                     f"{row.get('relative_flops', float('nan')):.3f} | "
                     f"{ev['executed_block_fraction']:.3f} |")
    for t in threads:
        lines += ["", f"Time per image relative to the plain ResNet of the same depth, "
                      f"{t} thread(s):", "",
                  "| arm | FLOPs | b1 skip | b1 mask | b64 skip | b64 mask | "
                  "time saved / FLOPs saved (b1) |", "|---|---|---|---|---|---|---|"]
        for name, row in summary.items():
            cells = [row.get(f"relative_time_b{b}_t{t}_{m}") for b in (1, 64)
                     for m in ("skip", "mask")]
            if all(c is None for c in cells) or name.endswith("_plain"):
                continue
            ratio = row.get(f"time_saved_over_flops_saved_b1_t{t}")
            lines.append(f"| {name} | {row['relative_flops']:.3f} | "
                         + " | ".join("" if c is None else f"{c:.3f}" for c in cells)
                         + f" | {'' if ratio is None else f'{ratio:.2f}'} |")
    return "\n".join(lines)


def summarize(record: dict, depths, threads) -> None:
    """Per arm: top-1, FLOPs relative to the plain ResNet, and per thread count the measured
    time relative to it at batch 1 / 64 with skipping and with masking, and time saved / FLOPs
    saved at batch 1."""
    evaluation, timing, summary = record["evaluation"], record["timing"], {}
    for depth in depths:
        plain = f"R{depth}_plain"
        if plain not in evaluation:
            continue
        for name, ev in evaluation.items():
            if not name.startswith(f"R{depth}_"):
                continue
            row = {"top1": ev["top1"],
                   "relative_flops": round(ev["mean_gflops"] / evaluation[plain]["mean_gflops"], 4)}
            saved_flops = 1 - row["relative_flops"]
            for t in threads:
                for batch in (1, 64):
                    times = timing.get(f"R{depth}_batch{batch}_threads{t}", {})
                    base = times.get(plain, {}).get("median_ms_per_image")
                    for mode in ("skip", "mask"):
                        key = plain if name == plain else f"{name}:{mode}"
                        if base and key in times:
                            row[f"relative_time_b{batch}_t{t}_{mode}"] = round(
                                times[key]["median_ms_per_image"] / base, 4)
                relative = row.get(f"relative_time_b1_t{t}_skip")
                if saved_flops > 0.01 and relative is not None:
                    row[f"time_saved_over_flops_saved_b1_t{t}"] = round(
                        (1 - relative) / saved_flops, 3)
            summary[name] = row
    record["summary"] = summary


if __name__ == "__main__":
    main()
