"""SkipNet benchmark on Fashion-MNIST (projects/SkipNet/README.md; tools/benchmark_skipnet.py is
its command line): the arms, their evaluation and timing in one process, the summary, plots and
the README's Markdown tables.

Arms per depth (38 and 74 by default): the plain ResNet, SkipNet with FFGate-I and with the RNN
gate after supervised pre-training (SP) and after hybrid RL from it (HRL+SP, the thesis'
relaxed reward with beta = alpha / N, as the reference's ImageNet script); at the lowest depth
also an alpha sweep of RNN-gate HRL with the prediction loss' weight fixed, beta = 1 (the reward
of the reference's CIFAR script, R = -L + alpha / N sum skips: with beta = alpha / N, alpha would
only scale the policy step, not trade accuracy for compute), HRL at the thesis' learning rate
1e-4, and the SOFT-gate and SDV baselines (SDV skips at random at the rate the HRL model
learned, measured on it when the SDV arm starts). The arms train with
:func:`dynnet_d2.engine.arms.train_arms` (two at a time, one thread each); every evaluation and
timing builds an arm's model from the ``config.yaml`` its training wrote and loads its weights
strictly (:func:`dynnet_d2.engine.runs.load_trained_model`).

Then, in one process (:func:`measure`): per arm the top-1 and the mean executed GFLOPs on the
whole test set; per depth and per intra-op thread count, milliseconds per image at batch 1 and
batch 64 of the plain ResNet and of each SkipNet with real skipping ("skip") and computed the
reference way ("mask"), the models interleaved over ``repeats`` rounds. :func:`summarize` relates
them to the plain ResNet, :func:`report` draws the per-class skip-ratio and accuracy-vs-FLOPs
plots and returns the Markdown tables. The JSON is rewritten (atomically) after every step.
"""
from functools import lru_cache
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
from detectron2.data import MetadataCatalog

from ...config import load_config
from ...data.classification import image_tensors
from ...engine.arms import REPO, Arm, train_arms, write_record
from ...engine.runs import load_trained_model
from ...utils.plots import plot_accuracy_vs_flops
from .analysis import (
    plot_skip_ratio_per_class,
    run_gated,
    set_inference_mode,
    skip_ratio_per_class,
    time_variants,
)

PLAIN = "configs/Classification/classifier_R38cifar_3000it_fashionmnist.yaml"
SP = "configs/SkipNet/skipnet_R38cifar_sp_3000it_fashionmnist.yaml"
HRL = "configs/SkipNet/skipnet_R38cifar_hrl_1000it_fashionmnist.yaml"
TEST = "fashion_mnist_test"
# The alpha sweep, beta = 1 (the reference's CIFAR reward); alpha 0: the policy sees the prediction
# loss only, no reward for skipping.
ALPHAS = (0.0, 0.1, 0.5, 1.0, 2.0, 4.0)
SWEEP_BETA = 1.0
SDV_IMAGES = 2000  # test images on which the HRL model's skip rate is measured for SDV


def sweep_arm(depth: int, alpha: float) -> str:
    return f"R{depth}_rnn_HRL_beta{SWEEP_BETA:g}_alpha{alpha}"


@lru_cache(maxsize=None)
def test_images(dataset: str = TEST, config: str = PLAIN):
    """``(images (N, C, H, W) uint8, labels (N,))`` of ``dataset`` as ``config`` maps them."""
    return image_tensors(load_config(str(REPO / config)), dataset)


def sdv_opts(hrl_run: Path) -> list:
    """The SDV arm's skip rate: the fraction of blocks the HRL run's model skips on the first
    ``SDV_IMAGES`` test images."""
    decisions = run_gated(load_trained_model(hrl_run)[1], test_images()[0][:SDV_IMAGES])
    return ["MODEL.SKIPNET.SDV_SKIP_RATE",
            str(round(1.0 - float(decisions["decisions"].float().mean()), 4))]


def arms(depths: Sequence[int], alpha_sweep: bool, baselines: bool) -> Dict[str, Arm]:
    """The arms in the order they should start (longest first)."""
    table = {}
    for depth in sorted(depths, reverse=True):
        d = ["MODEL.CIFAR_RESNET.DEPTH", str(depth)]
        table[f"R{depth}_plain"] = Arm(PLAIN, d)
        for gate in ("ffgate1", "rnn"):
            g = d + ["MODEL.SKIPNET.GATE_TYPE", gate]
            table[f"R{depth}_{gate}_SP"] = Arm(SP, g)
            table[f"R{depth}_{gate}_HRL"] = Arm(HRL, g, after=f"R{depth}_{gate}_SP")
    low = min(depths)
    d = ["MODEL.CIFAR_RESNET.DEPTH", str(low)]
    if alpha_sweep:
        for alpha in ALPHAS:
            table[sweep_arm(low, alpha)] = Arm(HRL, d + [
                "MODEL.SKIPNET.ALPHA", str(alpha), "MODEL.SKIPNET.BETA", str(SWEEP_BETA)],
                after=f"R{low}_rnn_SP")
        # the thesis' refinement learning rate (1e-4; the HRL config uses 1e-3), and at it with
        # BatchNorm statistics updated from the executed inputs (the reference's way)
        lr = d + ["SOLVER.BASE_LR", "0.0001"]
        table[f"R{low}_rnn_HRL_lr0.0001"] = Arm(HRL, lr, after=f"R{low}_rnn_SP")
        table[f"R{low}_rnn_HRL_lr0.0001_bn_updated"] = Arm(
            HRL, lr + ["MODEL.SKIPNET.HRL_FREEZE_BN", "False"], after=f"R{low}_rnn_SP")
    if baselines:
        table[f"R{low}_rnn_SOFT"] = Arm(SP, d + ["MODEL.SKIPNET.STAGE", "SOFT"])
        table[f"R{low}_SDV"] = Arm(SP, d + ["MODEL.SKIPNET.STAGE", "SDV"],
                                   after=f"R{low}_rnn_HRL", derived_opts=sdv_opts)
    return table


def trained_model(work_dir: Path, name: str):
    """Arm ``name``'s model as its run in ``work_dir`` trained it (its config.yaml, its weights
    loaded strictly), in eval mode on the CPU."""
    return load_trained_model(Path(work_dir) / name)[1]


def measure(table: Dict[str, Arm], record: dict, out: Path, work_dir: Path, *, depths,
            threads, workers: int, repeats: int, batch1_images: int, train: bool) -> None:
    """Train the arms (when ``train``), then evaluate and time them."""
    images, labels = test_images()
    models = {}

    def model_of(name):
        if name not in models:
            models[name] = trained_model(work_dir, name)
        return models[name]

    if train:
        torch.set_num_threads(1)
        train_arms(table, work_dir, record, out, workers=workers, threads=1)
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
    write_record(out, record)

    timing = record.setdefault("timing", {})
    for depth in depths:
        plain = f"R{depth}_plain"
        if plain not in trained:
            continue
        arms = [n for n in trained if n.startswith(f"R{depth}_") and n != plain]
        for t in threads:
            torch.set_num_threads(t)
            for batch, count in ((1, batch1_images), (64, len(images))):
                # the compiled gates are a batch-1 path: at batch 64 "skip-eager" is "skip"
                modes = ("skip", "skip-eager", "mask") if batch == 1 else ("skip", "mask")
                variants = {plain: (model_of(plain), None), **{
                    f"{name}:{mode}": (model_of(name), mode) for name in arms for mode in modes}}
                timing[f"R{depth}_batch{batch}_threads{t}"] = time_variants(
                    variants, images[:count], batch, repeats)
                for name in arms:
                    set_inference_mode(model_of(name), "skip")
                write_record(out, record)


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
                    for mode in ("skip", "skip-eager", "mask"):
                        key = plain if name == plain else f"{name}:{mode}"
                        if base and key in times:
                            row[f"relative_time_b{batch}_t{t}_{mode}"] = round(
                                times[key]["median_ms_per_image"] / base, 4)
                for mode, suffix in (("skip", ""), ("skip-eager", "_eager")):
                    relative = row.get(f"relative_time_b1_t{t}_{mode}")
                    if saved_flops > 0.01 and relative is not None:
                        row[f"time_saved_over_flops_saved_b1_t{t}{suffix}"] = round(
                            (1 - relative) / saved_flops, 3)
            summary[name] = row
    record["summary"] = summary


def report(record: dict, depths, threads, plots: Path) -> str:
    """Draw the plots (per-class skip ratios, accuracy vs FLOPs) of ``record`` into ``plots``;
    return its Markdown tables."""
    evaluation = record.get("evaluation", {})
    plots.mkdir(parents=True, exist_ok=True)
    names = [str(c) for c in MetadataCatalog.get(TEST).thing_classes]
    for name in [n for n in evaluation if n.endswith(("_rnn_HRL", "_rnn_SP"))]:
        depth = int(name[1:].split("_")[0])
        n = (depth - 2) // 6
        plot_skip_ratio_per_class(
            np.array(evaluation[name]["skip_ratio_per_class"], dtype=float), names, [n, n, n],
            str(plots / f"skip_ratio_{name}.png"),
            f"SkipNet-{depth} ({name}): per-block skip ratio per class, Fashion-MNIST test")
    low = min(depths)
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
    return markdown_tables(record, threads)


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
                  "| arm | FLOPs | b1 skip | b1 skip, PyTorch gates | b1 mask | b64 skip | "
                  "b64 mask | time saved / FLOPs saved (b1) | the same, PyTorch gates |",
                  "|---" * 9 + "|"]
        for name, row in summary.items():
            cells = [row.get(f"relative_time_b{b}_t{t}_{m}") for b, m in (
                (1, "skip"), (1, "skip-eager"), (1, "mask"), (64, "skip"), (64, "mask"))]
            if all(c is None for c in cells) or name.endswith("_plain"):
                continue
            ratios = [row.get(f"time_saved_over_flops_saved_b1_t{t}{s}") for s in ("", "_eager")]
            lines.append(f"| {name} | {row['relative_flops']:.3f} | "
                         + " | ".join("" if c is None else f"{c:.3f}" for c in cells) + " | "
                         + " | ".join("" if r is None else f"{r:.2f}" for r in ratios) + " |")
    return "\n".join(lines)
