"""DeepMoE benchmark (projects/DeepMoE/README.md; tools/benchmark_deepmoe.py is its command
line): three suites (:data:`SUITES`), each its own record.

``fashionmnist`` (Table 3.2 / Fig. 3.3 analogues; :func:`arms`), every arm 3000 iterations at
batch 128 like the plain ResNet-38, in the order they start (the most telling first, so a
partial run already compares):

* ``R38_plain``: the plain ResNet-38 (the SkipNet and IDK benchmarks' config);
* ``R38_lam{l}``: narrow-DeepMoE-38 (the plain widths) over a lambda sweep (:data:`LAMBDAS`), the
  top-1 vs executed-FLOPs curve; ``R38_lam{l}_ft``: each after the fine-tuning stage
  (lambda = mu = 0, the gating fixed, 1000 iterations from the first stage's weights);
* ``R38_static_matched``: the plain ResNet-38 narrowed (``CIFAR_RESNET.WIDTH``) to the executed
  FLOPs of ``R38_lam{MATCHED_LAMBDA}``, measured on its finished run when this arm starts (the
  static-pruning comparison);
* ``R38_skipnet``: SkipNet-38 (our other dynamic network: RNN gates before every residual
  block, supervised pre-training ``SP``), the plain ResNet-38's config and schedule with gates;
  it lands near DeepMoE's FLOPs by itself (about half the plain network's: measured, not
  tuned), so it is compared at matched FLOPs;
* ``R38w2_lam{l}``: wide-DeepMoE-38 (``WIDEN 2``) over :data:`WIDE_LAMBDAS`, to find the one
  whose executed FLOPs match the plain network's;
* ``<arm>_seed{s}`` (``--seeds``; :func:`with_seeds`): the arms compared at matched FLOPs
  (:data:`REPEATED`) again with ``SEED s``, evaluated but neither timed nor plotted; their
  spread over seeds is the record's ``seed_statistics``.

``widening`` (Fig. 3.5 analogue; :func:`widening_arms`): a ResNet-14 widened 1-4 times, plain and
narrow-DeepMoE (:data:`WIDENING_LAMBDA`), 1000 iterations each (the 16x FLOPs of width 4 at 3000
iterations do not fit this machine's budget; every arm is shortened alike).

``shapes`` (Tables 3.3-3.5 analogues; :func:`shapes_arms`): the half-width ResNet-18 + FPN Faster
R-CNN and semantic segmentor on the synthetic shapes, plain vs DeepMoE (two lambdas) vs the plain
backbone narrowed to DeepMoE's executed FLOPs (:func:`static_matched_backbone_opts`), each on its
config's 2800 iterations; the plain ones under the ``Dynamic*`` meta-architectures so all report
their executed backbone FLOPs (:mod:`dynnet_d2.modeling.dynamic_meta_arch`). Their numbers are the
runs' own evaluations (``inference/results.json``); the backbones of each task are then timed at
batch 1 on ~160 x 224 test images, plain vs DeepMoE masked vs sliced (:func:`measure_shapes`):
the batch-1 wall-clock at a size where convolutions, not per-layer overhead, dominate.

Arms train through :func:`dynnet_d2.engine.arms.train_arms` (finished arms skipped, failures
recorded). Then, for the classification suites, in one process (:func:`measure`), every
finished arm is rebuilt from its own ``config.yaml`` with its weights loaded strictly and
evaluated on the test set with per-image slicing (``BATCH_EXECUTION group``: the executed FLOPs
of each image as at batch 1); in ``fashionmnist`` the first-stage arms are timed at batch 1
and 64, interleaved over rounds (:func:`time_arms`: the DeepMoE arms masked vs sliced, ``union``
and ``group``; the plain and static networks and SkipNet as they execute), and the analysed
arm (:data:`ANALYSED`) gets the gate-embedding shuffling and the per-class channel utilisation
(:mod:`.analysis`).
"""
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.modeling import build_backbone
from detectron2.structures import ImageList

from ...config import load_config
from ...data.classification import image_tensors
from ...engine.arms import REPO, Arm, is_finished, train_arms, write_record
from ...engine.results import results_file
from ...engine.runs import load_trained_model, run_config
from ...modeling.flops import static_flops
from ...utils.measure import interleaved_median_s
from ...utils.plots import plot_accuracy_vs_flops, plot_per_class_heatmap
from ...utils.stats import describe, per_class_mean, welch_difference
from .analysis import FASHION_MNIST_GROUPS, gate_statistics, shuffled_accuracy
from .gated import DeepMoEBackbone

PLAIN = "configs/Classification/classifier_R38cifar_3000it_fashionmnist.yaml"
DEEPMOE = "configs/DeepMoE/deepmoe_R38cifar_3000it_fashionmnist.yaml"
FINETUNE = "configs/DeepMoE/deepmoe_R38cifar_finetune_1000it_fashionmnist.yaml"
TEST = "fashion_mnist_test"
CONFIG_MAX_ITER, FINETUNE_MAX_ITER = 3000, 1000  # the first stage's and the fine-tuning's
#: Measured at 1500 iterations: lambda <= 0.003 shrinks every gate but closes none; 0.005 closes
#: about half the gated channels; 0.01 closes ~95 % (the gates shrink alike and cross zero
#: together), so the sweep is dense between 0.002 and 0.01. Wide-DeepMoE (twice the gated
#: channels) keeps ~88 % open at 0.003 and ~14 % at 0.005: 0.004 is the one aimed at half.
LAMBDAS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.007, 0.01)
WIDE_LAMBDAS = (0.003, 0.004, 0.005)
MATCHED_LAMBDA = 0.005
PLAIN_WIDTH = 16
WIDENING_DEPTH, WIDTHS = 14, (1, 2, 3, 4)
WIDENING_OPTS = ["MODEL.CIFAR_RESNET.DEPTH", WIDENING_DEPTH, "SOLVER.MAX_ITER", 1000]
#: lambda of the widening suite's DeepMoE arms: the gates' L1 push (learning rate x lambda summed
#: over the schedule) of MATCHED_LAMBDA at 1500 iterations, over 1000.
WIDENING_LAMBDA = 0.0075
DETECTOR = "configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml"
DEEPMOE_DETECTOR = "configs/DeepMoE/faster_rcnn_deepmoe_R18half_FPN_2800it_shapes.yaml"
SEGMENTOR = "configs/semantic_R18half_FPN_2800it_shapessem.yaml"
DEEPMOE_SEGMENTOR = "configs/DeepMoE/semantic_deepmoe_R18half_FPN_2800it_shapessem.yaml"
#: The detector's config lambda (0.01) closed ~90 % of the gated channels by iteration 1000 of
#: 2800 and ~97 % in the end (measured); the suite also trains both tasks at half that, and
#: matches the static backbones to those runs.
SHAPES_LOW_LAMBDA = 0.005
#: The image shape (C, H, W) the narrowed backbone's FLOPs are counted at (a typical test image;
#: every convolution's cost scales with the pixels alike, so the ratio barely depends on it).
MATCH_SHAPE = (3, 160, 224)
SKIPNET = "configs/SkipNet/skipnet_R38cifar_sp_3000it_fashionmnist.yaml"
#: The ``fashionmnist`` arms that ``--seeds`` repeats (:func:`with_seeds`): the comparison at
#: matched FLOPs (plain, DeepMoE at MATCHED_LAMBDA with its fine-tuning, the static network,
#: SkipNet).
REPEATED = ("R38_plain", f"R38_lam{MATCHED_LAMBDA:g}", f"R38_lam{MATCHED_LAMBDA:g}_ft",
            "R38_static_matched", "R38_skipnet")
SEED_SUFFIX = "_seed"
#: (arm, baseline) pairs whose top-1 difference over seeds the record holds (seed_differences).
COMPARED = ((f"R38_lam{MATCHED_LAMBDA:g}_ft", "R38_static_matched"),
            (f"R38_lam{MATCHED_LAMBDA:g}", "R38_static_matched"),
            (f"R38_lam{MATCHED_LAMBDA:g}_ft", "R38_plain"),
            (f"R38_lam{MATCHED_LAMBDA:g}", "R38_plain"),
            (f"R38_lam{MATCHED_LAMBDA:g}_ft", "R38_skipnet"),
            ("R38_skipnet", "R38_plain"))
#: The arm analysed (gate-embedding shuffling, channel utilisation): the first one finished.
ANALYSED = (f"R38_lam{MATCHED_LAMBDA:g}_ft", f"R38_lam{MATCHED_LAMBDA:g}")


def static_matched_opts(deepmoe_run: Path) -> List:
    """``CIFAR_RESNET.WIDTH`` of a plain ResNet-38 whose FLOPs match the mean executed FLOPs of
    the finished DeepMoE run ``deepmoe_run`` (convolution FLOPs scale with the width squared:
    ``16 sqrt(executed / static)``, rounded), trained from scratch (no ``MODEL.WEIGHTS``)."""
    measured = evaluate(deepmoe_run)
    width = max(1, round(PLAIN_WIDTH * math.sqrt(measured["mean_gflops"]
                                                 / measured["static_gflops"])))
    return ["MODEL.CIFAR_RESNET.WIDTH", width, "MODEL.WEIGHTS", ""]


def narrowed_backbone_width(cfg, flops_ratio: float) -> int:
    """``RESNETS.STEM_OUT_CHANNELS`` (= ``RES2_OUT_CHANNELS``; every later stage doubles it) of
    ``cfg``'s backbone, at most its own width, whose static FLOPs (fvcore, FPN included, one
    :data:`MATCH_SHAPE` image) come closest to ``flops_ratio`` x those at its own width. The FLOPs
    grow with the width (bisection); the FPN's output convolutions do not shrink with it, so the
    ratio is not the width's square. Each width is built and counted once."""
    @lru_cache(maxsize=None)
    def flops(width: int) -> float:
        narrowed = cfg.clone()
        narrowed.defrost()
        narrowed.MODEL.RESNETS.STEM_OUT_CHANNELS = narrowed.MODEL.RESNETS.RES2_OUT_CHANNELS = width
        backbone = build_backbone(narrowed).eval()
        return static_flops(backbone, lambda x: tuple(backbone(x).values()),
                            torch.zeros((1,) + MATCH_SHAPE))[0]

    full = cfg.MODEL.RESNETS.STEM_OUT_CHANNELS
    target = flops_ratio * flops(full)
    low, high = 1, full  # the narrowest width whose FLOPs reach the target lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if flops(middle) < target else (low, middle)
    if low > 1 and target - flops(low - 1) < flops(low) - target:
        return low - 1
    return low


def static_matched_backbone_opts(plain_arm: str) -> Callable[[Path], List]:
    """Derived opts of a static backbone narrowed to the executed backbone FLOPs of a finished
    DeepMoE detector / segmentor run (the static-pruning comparison of Tables 3.3-3.5): the
    plain arm ``plain_arm``'s config (a sibling run folder, finished first) narrowed by
    :func:`narrowed_backbone_width` to the ratio of the two runs' mean executed backbone FLOPs
    on the same test images, trained from scratch on its schedule."""
    def derive(deepmoe_run: Path) -> List:
        plain_run = deepmoe_run.parent / plain_arm
        measured = []
        for run in (deepmoe_run, plain_run):
            if not is_finished(run):
                raise FileNotFoundError(f"the static backbone matched to {deepmoe_run.name!r} "
                                        f"needs the finished runs of {deepmoe_run.name!r} and "
                                        f"{plain_arm!r}: {results_file(run)} is missing (run the "
                                        f"suite again once they finished)")
            results = json.loads(results_file(run).read_text())
            measured.append(results["flops"]["mean_backbone_gflops"])
        width = narrowed_backbone_width(run_config(plain_run), measured[0] / measured[1])
        return ["MODEL.RESNETS.STEM_OUT_CHANNELS", width, "MODEL.RESNETS.RES2_OUT_CHANNELS",
                width, "MODEL.WEIGHTS", ""]
    return derive


def arms(lambdas: Sequence[float] = LAMBDAS, wide_lambdas: Sequence[float] = WIDE_LAMBDAS,
         finetune: bool = True, max_iter: int = CONFIG_MAX_ITER) -> Dict[str, Arm]:
    """The ``fashionmnist`` arms in the order they start (module docstring): the plain network,
    each lambda (:data:`MATCHED_LAMBDA` first) with its fine-tuning stage, the static network
    matched to :data:`MATCHED_LAMBDA` and SkipNet-38 right after it, then wide-DeepMoE.
    ``max_iter``: the iterations of every first-stage arm (the configs' cosine schedule is
    stretched alike); the fine-tuning stages keep the configs' ratio, a third of it."""
    schedule = [] if max_iter == CONFIG_MAX_ITER else ["SOLVER.MAX_ITER", max_iter]
    finetune_schedule = [] if max_iter == CONFIG_MAX_ITER else [
        "SOLVER.MAX_ITER", round(max_iter * FINETUNE_MAX_ITER / CONFIG_MAX_ITER)]
    table = {"R38_plain": Arm(PLAIN, schedule)}
    for lam in sorted(lambdas, key=lambda value: value != MATCHED_LAMBDA):
        table[f"R38_lam{lam:g}"] = Arm(DEEPMOE, ["MODEL.DEEPMOE.LAMBDA", lam] + schedule)
        if finetune:
            table[f"R38_lam{lam:g}_ft"] = Arm(FINETUNE, finetune_schedule,
                                              after=f"R38_lam{lam:g}")
        if lam == MATCHED_LAMBDA:
            table["R38_static_matched"] = Arm(PLAIN, schedule,
                                              after=f"R38_lam{MATCHED_LAMBDA:g}",
                                              derived_opts=static_matched_opts)
            table["R38_skipnet"] = Arm(SKIPNET, schedule)
    for lam in wide_lambdas:
        table[f"R38w2_lam{lam:g}"] = Arm(DEEPMOE, ["MODEL.DEEPMOE.WIDEN", 2,
                                                   "MODEL.DEEPMOE.LAMBDA", lam] + schedule)
    return table


def with_seeds(table: Dict[str, Arm], seeds: Sequence[int]) -> Dict[str, Arm]:
    """``table`` and, per seed ``s`` of ``seeds``, its arms of :data:`REPEATED` again with
    ``SEED s``, named ``<arm>_seed<s>``; one that starts from another arm starts from that arm's
    run of the same seed. ``table``'s own runs keep their config's ``SEED`` (-1: a random seed,
    not recorded), so they count as one more independent run of each arm."""
    seeded = dict(table)
    for seed in seeds:
        for name in REPEATED:
            if name in table:
                arm = table[name]
                seeded[f"{name}{SEED_SUFFIX}{seed}"] = Arm(
                    arm.config, list(arm.opts) + ["SEED", seed],
                    after=None if arm.after is None else f"{arm.after}{SEED_SUFFIX}{seed}",
                    derived_opts=arm.derived_opts)
    return seeded


def repeated_arm(name: str) -> Optional[str]:
    """The arm that ``name`` repeats with another seed (:func:`with_seeds`), else None."""
    match = re.fullmatch(rf"(.+){SEED_SUFFIX}\d+", name)
    return match.group(1) if match else None


def _runs_per_arm(results: dict) -> Dict[str, List[str]]:
    """``{arm: [its first run, its seeded runs]}`` for every arm of ``results`` repeated."""
    runs: Dict[str, List[str]] = {}
    for name in results:
        base = repeated_arm(name)
        if base is not None and base in results:
            runs.setdefault(base, [base]).append(name)
    return runs


def seed_statistics(results: dict) -> Dict[str, dict]:
    """Per arm of ``results`` that other seeds repeat: its runs (the arm's first and its seeded
    ones), top-1 and executed GFLOPs over them (mean, sample std, Student-t 95 % CI)."""
    statistics = {}
    for base, names in _runs_per_arm(results).items():
        statistics[base] = {"runs": names}
        for metric in ("top1", "mean_gflops"):
            stats = describe([results[n][metric] for n in names])
            statistics[base][metric] = {"n": stats.n, "mean": stats.mean, "std": stats.std,
                                        "ci95": stats.ci95}
    return statistics


def seed_differences(results: dict) -> List[dict]:
    """Top-1 differences between the repeated arms (:data:`COMPARED`, where both have two runs
    or more): the difference of their means over their runs and Welch's 95 % interval (the runs
    of two arms are independent samples, not pairs: a seed means nothing across arms)."""
    runs = _runs_per_arm(results)
    rows = []
    for arm, baseline in COMPARED:
        if len(runs.get(arm, ())) > 1 and len(runs.get(baseline, ())) > 1:
            rows.append({"arm": arm, "baseline": baseline, **welch_difference(
                [results[n]["top1"] for n in runs[arm]],
                [results[n]["top1"] for n in runs[baseline]])})
    return rows


def widening_arms(widths: Sequence[int] = WIDTHS) -> Dict[str, Arm]:
    """The ``widening`` arms (module docstring), narrowest first."""
    table = {}
    for width in widths:
        table[f"R{WIDENING_DEPTH}x{width}_plain"] = Arm(
            PLAIN, WIDENING_OPTS + ["MODEL.CIFAR_RESNET.WIDTH", PLAIN_WIDTH * width])
        table[f"R{WIDENING_DEPTH}x{width}_deepmoe"] = Arm(
            DEEPMOE, WIDENING_OPTS + ["MODEL.DEEPMOE.WIDEN", width,
                                      "MODEL.DEEPMOE.LAMBDA", WIDENING_LAMBDA])
    return table


def shapes_arms() -> Dict[str, Arm]:
    """The ``shapes`` arms (module docstring): per task the plain network, DeepMoE at its
    config's lambda and at :data:`SHAPES_LOW_LAMBDA`, and the plain network narrowed to the
    latter's executed backbone FLOPs (started after it; the plain arm, listed first, has
    finished by then)."""
    table = {}
    for task, config, deepmoe_config, meta_arch in (
            ("det", DETECTOR, DEEPMOE_DETECTOR, "DynamicGeneralizedRCNN"),
            ("seg", SEGMENTOR, DEEPMOE_SEGMENTOR, "DynamicSemanticSegmentor")):
        plain_opts = ["MODEL.META_ARCHITECTURE", meta_arch]
        matched = f"{task}_deepmoe_lam{SHAPES_LOW_LAMBDA:g}"
        table[f"{task}_plain"] = Arm(config, plain_opts)
        table[f"{task}_deepmoe"] = Arm(deepmoe_config)
        table[matched] = Arm(deepmoe_config, ["MODEL.DEEPMOE.LAMBDA", SHAPES_LOW_LAMBDA])
        table[f"{task}_static_matched"] = Arm(
            config, plain_opts, after=matched,
            derived_opts=static_matched_backbone_opts(f"{task}_plain"))
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


def analyse(run: Path) -> dict:
    """Gate-embedding shuffling and per-class channel utilisation of the finished DeepMoE run
    ``run`` on the test set (:mod:`.analysis`)."""
    _, model = load_trained_model(run)
    images, labels = test_images()
    statistics = gate_statistics(model, images)
    shuffled = shuffled_accuracy(model, images, labels, statistics["embeddings"],
                                 FASHION_MNIST_GROUPS)
    utilisation = per_class_mean(statistics["open_fraction"].numpy(), labels.numpy(),
                                 int(labels.max()) + 1)
    return {"groups": {k: list(v) for k, v in FASHION_MNIST_GROUPS.items()},
            "shuffling": {str(c): row for c, row in shuffled.items()},
            "gated_layers": list(model.backbone.moe_blocks),
            "utilisation_per_class": utilisation.round(4).tolist()}


def measure(table: Dict[str, Arm], record: dict, out: Path, work_dir: Path, *, workers: int,
            threads: Sequence[int], rounds: int, batch1_images: int, train: bool,
            timing: bool = True) -> None:
    """Train the arms (when ``train``), evaluate every finished one, analyse
    :data:`ANALYSED`, time the arms (when ``timing``); ``out`` is rewritten after every step."""
    if train:
        train_arms(table, work_dir, record, out, workers=workers, threads=1)
    finished = {n: work_dir / n for n in table if (work_dir / n / "model_final.pth").is_file()}
    results = record.setdefault("results", {})
    for name, run in finished.items():
        if name not in results:
            results[name] = evaluate(run)
            write_record(out, record)
    if any(repeated_arm(n) for n in results):
        record["seed_statistics"] = seed_statistics(results)
        record["seed_differences"] = seed_differences(results)
        write_record(out, record)
    analysed = next((n for n in ANALYSED if n in finished), None)
    if analysed is not None and analysed not in record.setdefault("analysis", {}):
        record["analysis"][analysed] = analyse(finished[analysed])
        write_record(out, record)
    if not timing:
        return
    images = test_images()[0]
    timed = {n: r for n, r in finished.items()
             if not n.endswith("_ft") and repeated_arm(n) is None}
    if record.get("timed_arms") != sorted(timed):  # more arms finished: time them all again
        record["timing"], record["timed_arms"] = {}, sorted(timed)
    for count in threads:
        torch.set_num_threads(count)
        for batch, subset in ((1, images[:batch1_images]), (64, images)):
            key = f"threads{count}/batch{batch}"
            if key not in record.setdefault("timing", {}):
                record["timing"][key] = time_arms(timed, batch=batch, images=subset,
                                                  rounds=rounds)
                write_record(out, record)


def measure_shapes(table: Dict[str, Arm], record: dict, out: Path, work_dir: Path, *,
                   workers: int, threads: Sequence[int], rounds: int, images: int,
                   train: bool, timing: bool = True) -> None:
    """The ``shapes`` suite: train the arms (when ``train``; their numbers are their own
    evaluations), then (when ``timing``) time the backbones of each task's finished runs at
    batch 1 (:func:`time_backbones`), again when more of them finished since; ``out`` is
    rewritten after every step."""
    if train:
        train_arms(table, work_dir, record, out, workers=workers, threads=1)
    if not timing:
        return
    finished = {n: work_dir / n for n in table if is_finished(work_dir / n)}
    timings, timed = record.setdefault("timing", {}), record.setdefault("timed_arms", {})
    for task in ("det", "seg"):
        runs = {n: r for n, r in finished.items() if n.startswith(f"{task}_")}
        if len(runs) < 2:
            continue
        if timed.get(task) != sorted(runs):
            for key in [k for k in timings if k.startswith(f"{task}/")]:
                del timings[key]
            timed[task] = sorted(runs)
        for count in threads:
            key = f"{task}/threads{count}/batch1"
            if key not in timings:
                torch.set_num_threads(count)
                timings[key] = time_backbones(runs, images=images, rounds=rounds)
                write_record(out, record)


def time_backbones(runs: Dict[str, Path], *, images: int, rounds: int) -> dict:
    """Milliseconds per image of the backbones of the finished detector / segmentor ``runs`` at
    batch 1 on the first ``images`` images of their test set (as their test mapper and
    preprocessing make them: ~160 x 224 px), interleaved over ``rounds``: a plain backbone as it
    is, a DeepMoE one masked and sliced."""
    variants = {}
    for name, run in runs.items():
        cfg, model = load_trained_model(run)
        mapper = DatasetMapper(cfg, is_train=False)
        records = DatasetCatalog.get(cfg.DATASETS.TEST[0])[:images]
        inputs = [model.preprocess_image([mapper(r)]).tensor if hasattr(model, "preprocess_image")
                  else _segmentor_input(model, mapper(r)) for r in records]
        moe = model.backbone if isinstance(model.backbone, DeepMoEBackbone) else None
        for mode in ([None] if moe is None else ["mask", "slice"]):
            variants[name if mode is None else f"{name} {mode}"] = _timed_backbone(
                model.backbone, mode, inputs)
    timings = interleaved_median_s(variants, rounds)
    return {label: {"ms_per_image": 1000.0 * t["median_s"] / images, "runs_s": t["runs_s"]}
            for label, t in timings.items()}


def _segmentor_input(model, mapped: dict) -> torch.Tensor:
    """A ``SemanticSegmentor``'s backbone input for one mapped image (normalized, padded)."""
    image = (mapped["image"].to(model.device) - model.pixel_mean) / model.pixel_std
    return ImageList.from_tensors([image], model.backbone.size_divisibility,
                                  padding_constraints=model.backbone.padding_constraints).tensor


def _timed_backbone(backbone, mode: Optional[str], inputs: List[torch.Tensor]):
    def call():
        if mode is not None:
            backbone.inference = mode
        with torch.no_grad():
            for x in inputs:
                backbone(x)
    return call


def flops_points(results: dict, reference: str) -> List[dict]:
    """The points of the accuracy-vs-FLOPs figure: every arm of ``results`` but ``reference``,
    top-1 and executed FLOPs relative to ``reference``'s, labelled by its lambda or width, in
    series (narrow / fine-tuned / wide DeepMoE, plain and static networks) ordered by FLOPs."""
    points = []
    for arm, r in results.items():
        if arm == reference or repeated_arm(arm) is not None:
            continue
        lam = re.search(r"_lam([0-9.e-]+)", arm)
        width = re.match(r"R\d+x(\d+)_", arm)
        if arm.startswith("R38w"):
            series = "wide-DeepMoE"
        elif lam:
            series = "narrow-DeepMoE" + (", fine-tuned" if arm.endswith("_ft") else "")
        else:
            series = next((s for key, s in (("deepmoe", "DeepMoE"), ("static", "static"),
                                            ("skipnet", "SkipNet")) if key in arm), "plain")
        label = (f"lambda {lam.group(1)}" if lam and not arm.endswith("_ft")
                 else f"x{width.group(1)}" if width else "")
        points.append({"label": label, "series": series, "top1": r["top1"],
                       "relative_flops": r["mean_gflops"] / results[reference]["mean_gflops"]})
    order = {}
    for point in points:
        order.setdefault(point["series"], len(order))
    return sorted(points, key=lambda p: (order[p["series"]], p["relative_flops"]))


def plot(record: dict, folder: Path, name: str) -> List[Path]:
    """The figures of a classification suite's ``record`` into ``folder`` (``name`` prefixes
    their files): top-1 vs executed FLOPs relative to the plain network of every arm evaluated
    (first-stage DeepMoE arms joined in the order of their FLOPs), and the analysed arm's
    per-class channel utilisation. Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    results, written = record.get("results", {}), []
    reference = _first_plain(results)
    if reference is not None:
        path = folder / f"{name}_accuracy_vs_flops.png"
        plot_accuracy_vs_flops(flops_points(results, reference), str(path),
                               f"DeepMoE, {name}: top-1 vs executed FLOPs",
                               reference={"label": reference, "top1": results[reference]["top1"]},
                               xlabel=f"executed FLOPs / {reference} FLOPs")
        written.append(path)
    for arm, analysis in record.get("analysis", {}).items():
        classes = MetadataCatalog.get(TEST).thing_classes
        path = folder / f"{name}_channel_utilisation_{arm}.png"
        plot_per_class_heatmap(
            np.array(analysis["utilisation_per_class"], dtype=float), classes, str(path),
            title=f"{arm}: mean fraction of open channels per gated layer and class",
            xlabel="gated layer (first conv of each basic block, in order)",
            colorbar_label="fraction of channels open")
        written.append(path)
    return written


def report(record: dict, suite: str = "fashionmnist") -> str:
    """The README's tables: accuracy and executed FLOPs per arm (classification suites; relative
    to the first plain arm) or the runs' own evaluations (``shapes``), the timings and the
    gate-embedding shuffling."""
    lines = shapes_report(record) if suite == "shapes" else classification_report(record)
    if record.get("seed_statistics"):
        lines += ["", "Over seeds (the arm's first run and its `_seed<s>` runs; mean ± Student-t "
                  "95 % CI):", "", "| arm | runs | top-1 (%) | executed MFLOPs / image |",
                  "|---|---|---|---|"]
        lines += [f"| {arm} | {s['top1']['n']} | {s['top1']['mean']:.2f} ± "
                  f"{s['top1']['ci95']:.2f} | {1000 * s['mean_gflops']['mean']:.2f} |"
                  for arm, s in record["seed_statistics"].items()]
    if record.get("seed_differences"):
        lines += ["", "Top-1 differences over seeds (difference of the means ± Welch's 95 % CI):",
                  "", "| arm − baseline | top-1 difference |", "|---|---|"]
        lines += [f"| {d['arm']} − {d['baseline']} | {d['difference']:+.2f} ± {d['ci95']:.2f} |"
                  for d in record["seed_differences"]]
    for key, timings in record.get("timing", {}).items():
        lines += ["", f"Milliseconds per image, {key.replace('/', ', ')} (median of the "
                  f"interleaved rounds):", "", "| variant | ms / image |", "|---|---|"]
        lines += [f"| {label} | {t['ms_per_image']:.3f} |" for label, t in timings.items()]
    lines += savings_report(record)
    for arm, analysis in record.get("analysis", {}).items():
        lines += ["", f"Gate-embedding shuffling, {arm} (top-1 % of each class):", "",
                  "| class | own | same group | other groups |", "|---|---|---|---|"]
        lines += [f"| {c} | {r['own']:.1f} | {r['same_group']:.1f} | {r['other_groups']:.1f} |"
                  for c, r in analysis["shuffling"].items()]
    return "\n".join(lines)


def _first_plain(results: dict) -> Optional[str]:
    """The first plain arm of ``results``: the reference of the relative FLOPs."""
    return next((n for n in results if n.endswith("plain")), None)


def classification_report(record: dict) -> List[str]:
    """Top-1 and executed FLOPs of every evaluated arm, relative to the first plain one."""
    results = record.get("results", {})
    reference = _first_plain(results)
    lines = [f"| arm | top-1 (%) | executed MFLOPs / image | vs {reference or 'plain'} |",
             "|---|---|---|---|"]
    for name, r in results.items():
        ratio = (f"{r['mean_gflops'] / results[reference]['mean_gflops']:.2f}"
                 if reference else "–")
        lines.append(f"| {name} | {r['top1']:.2f} | {1000 * r['mean_gflops']:.2f} | {ratio} |")
    return lines


def savings_report(record: dict) -> List[str]:
    """Per timing at batch 1 and arm timed as it executes (a DeepMoE arm sliced, SkipNet and the
    static network as they are): the executed FLOPs saved against the first plain arm, the
    wall-clock saved, and their ratio (issue 24's target for DeepMoE: >= 0.6)."""
    results, lines = record.get("results", {}), []
    reference = _first_plain(results)
    for key, timings in record.get("timing", {}).items():
        if not key.endswith("batch1") or reference not in timings:
            continue
        plain_ms = timings[reference]["ms_per_image"]
        rows = []
        for label, timing in timings.items():
            arm, _, mode = label.partition(" ")
            if mode not in ("", "slice") or arm == reference or arm not in results:
                continue
            flops_saved = 1.0 - results[arm]["mean_gflops"] / results[reference]["mean_gflops"]
            time_saved = 1.0 - timing["ms_per_image"] / plain_ms
            ratio = f"{time_saved / flops_saved:.2f}" if flops_saved > 0 else "–"
            rows.append(f"| {arm} | {100 * flops_saved:.1f} | {100 * time_saved:.1f} | {ratio} |")
        if rows:
            lines += ["", f"Batch-1 savings as executed (DeepMoE sliced), {key.split('/')[0]} "
                      f"(against {reference}):", "", "| arm | FLOPs saved (%) | time saved (%) | "
                      "time saved / FLOPs saved |", "|---|---|---|---|", *rows]
    return lines


def shapes_report(record: dict) -> List[str]:
    """The ``shapes`` suite's table: each run's box AP / AP50 or mIoU and mean executed backbone
    GFLOPs from its own evaluation."""
    lines = ["| arm | AP | AP50 | mIoU | backbone GFLOPs / image |", "|---|---|---|---|---|"]
    for name, run in record.get("runs", {}).items():
        r = run.get("results") or {}
        box, seg = r.get("bbox", {}), r.get("sem_seg", {})
        cells = [box.get("AP"), box.get("AP50"), seg.get("mIoU"),
                 r.get("flops", {}).get("mean_backbone_gflops")]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.2f}" if i < 3
                                                  else f"{v:.3f}" for i, v in enumerate(cells))
                     + " |")
    return lines


#: The suites: their arms and the record's default file.
SUITES = {"fashionmnist": (arms, "benchmarks/deepmoe_fashionmnist_2cpu.json"),
          "widening": (widening_arms, "benchmarks/deepmoe_widening_2cpu.json"),
          "shapes": (shapes_arms, "benchmarks/deepmoe_shapes_2cpu.json")}
