"""DeepMoE benchmark on Fashion-MNIST (projects/DeepMoE/README.md; tools/benchmark_deepmoe.py is
its command line): Table 3.2 / Fig. 3.3 analogues.

Arms (:func:`arms`), every one 3000 iterations at batch 128 like the plain ResNet-38:

* ``R38_plain``: the plain ResNet-38 (the SkipNet and IDK benchmarks' config);
* ``R38_lam{l}``: narrow-DeepMoE-38 (the plain widths) over a lambda sweep (:data:`LAMBDAS`), the
  top-1 vs executed-FLOPs curve; ``R38_lam{l}_ft``: each after the fine-tuning stage
  (lambda = mu = 0, the gating fixed, 1000 iterations from the first stage's weights);
* ``R38w2_lam{l}``: wide-DeepMoE-38 (``WIDEN 2``) over :data:`WIDE_LAMBDAS`, to find the one
  whose executed FLOPs match the plain network's;
* ``R38_static_matched``: the plain ResNet-38 narrowed (``CIFAR_RESNET.WIDTH``) to the executed
  FLOPs of ``R38_lam{MATCHED_LAMBDA}``, measured on its finished run when this arm starts (the
  static-pruning comparison).

Arms train through :func:`dynnet_d2.engine.arms.train_arms` (finished arms skipped, failures
recorded). Then, in one process (:func:`measure`), every finished arm is rebuilt from its own
``config.yaml`` with its weights loaded strictly and evaluated on the test set with per-image
slicing (``BATCH_EXECUTION group``: the executed FLOPs of each image as at batch 1), and the
plain network and the DeepMoE arms are timed at batch 1 and 64, masked vs sliced (``union``,
``group``), interleaved over rounds (:func:`time_arms`).
"""
import math
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ...config import load_config
from ...data.classification import image_tensors
from ...engine.arms import REPO, Arm, train_arms, write_record
from ...engine.runs import load_trained_model
from ...utils.measure import interleaved_median_s
from .gated import DeepMoEBackbone

PLAIN = "configs/Classification/classifier_R38cifar_3000it_fashionmnist.yaml"
DEEPMOE = "configs/DeepMoE/deepmoe_R38cifar_3000it_fashionmnist.yaml"
FINETUNE = "configs/DeepMoE/deepmoe_R38cifar_finetune_1000it_fashionmnist.yaml"
TEST = "fashion_mnist_test"
LAMBDAS = (0.0005, 0.001, 0.002, 0.005)
WIDE_LAMBDAS = (0.002, 0.005, 0.01)
MATCHED_LAMBDA = 0.001
PLAIN_WIDTH = 16


def static_matched_opts(deepmoe_run: Path) -> List:
    """``CIFAR_RESNET.WIDTH`` of a plain ResNet-38 whose FLOPs match the mean executed FLOPs of
    the finished DeepMoE run ``deepmoe_run`` (convolution FLOPs scale with the width squared:
    ``16 sqrt(executed / static)``, rounded), trained from scratch (no ``MODEL.WEIGHTS``)."""
    measured = evaluate(deepmoe_run)
    width = max(1, round(PLAIN_WIDTH * math.sqrt(measured["mean_gflops"]
                                                 / measured["static_gflops"])))
    return ["MODEL.CIFAR_RESNET.WIDTH", width, "MODEL.WEIGHTS", ""]


def arms(lambdas: Sequence[float] = LAMBDAS, wide_lambdas: Sequence[float] = WIDE_LAMBDAS,
         finetune: bool = True) -> Dict[str, Arm]:
    """The arms in the order they start (module docstring)."""
    table = {"R38_plain": Arm(PLAIN)}
    for lam in lambdas:
        table[f"R38_lam{lam:g}"] = Arm(DEEPMOE, ["MODEL.DEEPMOE.LAMBDA", lam])
        if finetune:
            table[f"R38_lam{lam:g}_ft"] = Arm(FINETUNE, after=f"R38_lam{lam:g}")
    for lam in wide_lambdas:
        table[f"R38w2_lam{lam:g}"] = Arm(DEEPMOE, ["MODEL.DEEPMOE.WIDEN", 2,
                                                   "MODEL.DEEPMOE.LAMBDA", lam])
    if MATCHED_LAMBDA in lambdas:
        table["R38_static_matched"] = Arm(PLAIN, after=f"R38_lam{MATCHED_LAMBDA:g}",
                                          derived_opts=static_matched_opts)
    return table


@lru_cache(maxsize=None)
def test_images(config: str = PLAIN, dataset: str = TEST):
    """``(images (N, C, H, W) uint8, labels (N,))`` of ``dataset`` as ``config``'s test mapper
    makes them (mapped once per process: every arm's evaluation reads them)."""
    return image_tensors(load_config(str(REPO / config)), dataset)


def _deepmoe(model) -> Optional[DeepMoEBackbone]:
    return model.backbone if isinstance(model.backbone, DeepMoEBackbone) else None


def evaluate(run: Path, batch: int = 256) -> dict:
    """Top-1 (%), mean executed GFLOPs per image and the static GFLOPs (every channel) of the
    finished run ``run`` on the test set, a DeepMoE evaluated with per-image slicing
    (``group``)."""
    _, model = load_trained_model(run)
    moe = _deepmoe(model)
    if moe is not None:
        moe.inference, moe.batch_execution = "slice", "group"
    images, labels = test_images()
    correct, gflops = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            outputs = model([{"image": i} for i in images[start:start + batch]])
            scores = torch.stack([o["scores"] for o in outputs])
            correct += int((scores.argmax(1) == labels[start:start + batch]).sum())
            gflops += sum(o["gflops"] for o in outputs)
    static = model.flops.static(tuple(images.shape[1:]), model.device)[0] / 1e9
    return {"top1": 100.0 * correct / len(images), "mean_gflops": gflops / len(images),
            "static_gflops": static}


def time_arms(runs: Dict[str, Path], *, batch: int, images: torch.Tensor, rounds: int) -> dict:
    """Milliseconds per image of every run at ``batch``, interleaved over ``rounds``: the plain
    networks as they are, each DeepMoE masked and sliced (batch 1: per image; batch > 1:
    ``union`` and ``group``)."""
    variants = {}
    for name, run in runs.items():
        _, model = load_trained_model(run)
        moe = _deepmoe(model)
        modes = [None] if moe is None else (
            [("mask", "union"), ("slice", "union")] if batch == 1
            else [("mask", "union"), ("slice", "union"), ("slice", "group")])
        for mode in modes:
            label = name if mode is None else f"{name} {mode[0]}" + (
                f" {mode[1]}" if batch > 1 and mode[0] == "slice" else "")
            variants[label] = _timed_call(model, moe, mode, images, batch)
    timings = interleaved_median_s(variants, rounds)
    return {label: {"ms_per_image": 1000.0 * t["median_s"] / len(images),
                    "runs_s": t["runs_s"]} for label, t in timings.items()}


def _timed_call(model, moe, mode, images: torch.Tensor, batch: int):
    def call():
        if moe is not None:
            moe.inference, moe.batch_execution = mode
        with torch.no_grad():
            for start in range(0, len(images), batch):
                model.logits((images[start:start + batch].float() - model.pixel_mean)
                             / model.pixel_std)
    return call


def measure(table: Dict[str, Arm], record: dict, out: Path, work_dir: Path, *, workers: int,
            threads: Sequence[int], rounds: int, batch1_images: int, train: bool) -> None:
    """Train the arms (when ``train``), evaluate every finished one, time them; ``out`` is
    rewritten after every step."""
    if train:
        train_arms(table, work_dir, record, out, workers=workers, threads=1)
    finished = {n: work_dir / n for n in table if (work_dir / n / "model_final.pth").is_file()}
    results = record.setdefault("results", {})
    for name, run in finished.items():
        if name not in results:
            results[name] = evaluate(run)
            write_record(out, record)
    images = test_images()[0]
    timed = {n: r for n, r in finished.items() if not n.endswith("_ft")}
    for count in threads:
        torch.set_num_threads(count)
        for batch, subset in ((1, images[:batch1_images]), (64, images)):
            key = f"threads{count}/batch{batch}"
            if key not in record.setdefault("timing", {}):
                record["timing"][key] = time_arms(timed, batch=batch, images=subset,
                                                  rounds=rounds)
                write_record(out, record)


def report(record: dict) -> str:
    """The README's tables: accuracy and executed FLOPs per arm, then the timings."""
    results = record.get("results", {})
    plain = results.get("R38_plain")
    lines = ["| arm | top-1 (%) | executed MFLOPs / image | vs plain |", "|---|---|---|---|"]
    for name, r in results.items():
        ratio = f"{r['mean_gflops'] / plain['mean_gflops']:.2f}" if plain else "–"
        lines.append(f"| {name} | {r['top1']:.2f} | {1000 * r['mean_gflops']:.2f} | {ratio} |")
    for key, timings in record.get("timing", {}).items():
        lines += ["", f"Milliseconds per image, {key.replace('/', ', ')} (median of the "
                  f"interleaved rounds):", "", "| variant | ms / image |", "|---|---|"]
        lines += [f"| {label} | {t['ms_per_image']:.3f} |" for label, t in timings.items()]
    return "\n".join(lines)
