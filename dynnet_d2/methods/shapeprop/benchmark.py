"""ShapeProp benchmark on the synthetic shapes (projects/ShapeProp/README.md, thesis ch. 8;
tools/benchmark_shapeprop.py is its command line): the arms, the shape quality of the maps,
timing and the Markdown tables.

Arms, every one on the same schedule (``max_iter``, the LR steps at the configs' fractions):
the partially supervised class-agnostic Mask R-CNN baseline and ShapeProp with masks on the
split-1 base classes (seeds 0 and 1), the fully supervised oracle (the baseline's model with
every mask; seeds 0 and 1), both with masks on the novel classes (the reverse direction) and on
10 % of the images (seed 0), the channel-agnostic ShapeProp (seed 0), the baseline with a
mask head of about ShapeProp's head parameters (4 convs x 96 channels; seed 0), and ShapeProp
with every mask (Table 8.3; seed 0).

The arms train with :func:`dynnet_d2.engine.arms.train_arms` into ``<work>/<arm>`` (by default two
at a time, one thread each: on the 2-core machine two one-thread trainings of ShapeProp ran at
1.20 and 1.27 s/iter side by side, one two-thread training at 0.94 s/iter alone, so two at once
train 1.5x as many iterations an hour). An arm whose evaluation the record already holds, from
the same config and options, is not trained again even when its folder is gone (a later
checkout keeps the record in ``benchmarks/``, not the run folders); ``seeds`` restricts a run to
some of the suite's seeds, so that a long suite can be measured a few seeds at a time.

Arms whose training data keep every class's masks (oracle, image-wise) are
evaluated again with the split-1 subsets (``eval_base1``), so that every arm reports mask AP on
the same classes. Then, on the seed-0 models (built from their runs' ``config.yaml``, weights
loaded strictly: :func:`dynnet_d2.engine.runs.load_trained_model`): the shape quality of
saliency vs Shape Activation (best overlap with the ground-truth mask by object size, Fig. 8.9),
a figure of held-out-class instances (Fig. 8.8), inference time and training s/iter of ShapeProp
vs the baseline measured in this process on the same inputs. The JSON is rewritten atomically
after every phase (:func:`run`).
"""
import json
import sys
from functools import partial
from pathlib import Path
from typing import NamedTuple, Tuple

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.utils.events import EventStorage

from ...data.mappers import CheckedDatasetMapper
from ...engine.arms import Arm, is_finished, machine, train_arms, train_net, write_record
from ...engine.results import results_file
from ...engine.runs import load_trained_model
from ...engine.trainer import DynnetTrainer
from ...modeling.roi_align import use_roi_align_cpu_backward
from ...utils.measure import interleaved_median_s
from . import analysis

BASELINE = "configs/ShapeProp/mask_rcnn_agnostic_MobileNetV2_FPN_2800it_shapesmasksbase1.yaml"
SHAPEPROP = "configs/ShapeProp/shapeprop_MobileNetV2_FPN_2800it_shapesmasksbase1.yaml"
CONFIG_MAX_ITER, CONFIG_STEPS = 2800, (2200, 2600)
BASE1 = "shapes_train_masks_base1"


def train(dataset: str) -> list:
    return ["DATASETS.TRAIN", f"('{dataset}',)"]


# The first version of ShapeProp (before the second pass): the latent channels concatenated to
# the mask head's input, a kernel predictor with conv layers of its own and a 3x3 last conv, a
# 2-conv saliency head, every background proposal a negative MIL bag.
FIRST_VERSION = ["MODEL.SHAPEPROP.FUSION", "latent", "MODEL.SHAPEPROP.SHARE_FEATURES", "False",
                 "MODEL.SHAPEPROP.KERNEL_CONV_SIZE", "3", "MODEL.SHAPEPROP.SALIENCY_NUM_CONV", "2",
                 "MODEL.SHAPEPROP.MIL_NEGATIVE_FRACTION", "1.0"]
HEAD_4X96 = ["MODEL.ROI_MASK_HEAD.NUM_CONV", "4", "MODEL.ROI_MASK_HEAD.CONV_DIM", "96"]


def seed(value: int) -> list:
    return ["SEED", str(value)]


# Suites of arms, each on one schedule and in its own record. An arm: name -> (label, config,
# overrides, which training instances keep masks: "base1" (split-1 base classes), "novel1" or
# "all" (every class; evaluated again on the split-1 subsets)).
# The configs' schedule, ordered by seed: the issue's three arms with 3 seeds, ShapeProp's first
# version with seed 0 only (its 3 x 2800 iterations at ~1.2 s/iter do not fit this machine's
# budget beside them; the validation suite compared it too).
MAIN = {}
for _seed in (0, 1, 2):
    MAIN.update({
        f"maskrcnn_base1_seed{_seed}": ("Mask R-CNN (class-agnostic), masks on base", BASELINE,
                                        seed(_seed), "base1"),
        # Deep-MAC: the mask head's capacity matters; this head has about as many parameters as
        # ShapeProp's first version's mask head with its saliency head and propagation
        f"maskrcnn_head4x96_base1_seed{_seed}": (
            "Mask R-CNN, mask head 4 x 96 channels, masks on base", BASELINE,
            seed(_seed) + HEAD_4X96, "base1"),
        f"shapeprop_base1_seed{_seed}": ("Mask R-CNN + ShapeProp, masks on base", SHAPEPROP,
                                         seed(_seed), "base1"),
    })
    if _seed == 0:
        MAIN["shapeprop_first_base1_seed0"] = (
            "ShapeProp, first version (latent fusion, heavier heads), masks on base", SHAPEPROP,
            seed(0) + FIRST_VERSION, "base1")
ABLATIONS = {}  # the directions, fractions and ablations, one shorter schedule
for _seed in (0, 1):
    ABLATIONS[f"maskrcnn_base1_seed{_seed}"] = MAIN[f"maskrcnn_base1_seed{_seed}"]
    ABLATIONS[f"shapeprop_base1_seed{_seed}"] = MAIN[f"shapeprop_base1_seed{_seed}"]
    ABLATIONS[f"oracle_seed{_seed}"] = ("Oracle: Mask R-CNN (class-agnostic), every mask",
                                        BASELINE, seed(_seed) + train("shapes_train"), "all")
ABLATIONS.update({
    "maskrcnn_novel1_seed0": ("Mask R-CNN, masks on novel", BASELINE,
                              seed(0) + train("shapes_train_masks_novel1"), "novel1"),
    "shapeprop_novel1_seed0": ("ShapeProp, masks on novel", SHAPEPROP,
                               seed(0) + train("shapes_train_masks_novel1"), "novel1"),
    "maskrcnn_10pct_seed0": ("Mask R-CNN, masks on 10 % of images", BASELINE,
                             seed(0) + train("shapes_train_masks_10pct_seed0"), "all"),
    "shapeprop_10pct_seed0": ("ShapeProp, masks on 10 % of images", SHAPEPROP,
                              seed(0) + train("shapes_train_masks_10pct_seed0"), "all"),
    "shapeprop_chagnostic_base1_seed0": ("ShapeProp channel-agnostic, masks on base", SHAPEPROP,
                                         seed(0) + ["MODEL.SHAPEPROP.CHANNEL_AGNOSTIC", "True"],
                                         "base1"),
    "maskrcnn_head4x96_base1_seed0": MAIN["maskrcnn_head4x96_base1_seed0"],
    # ShapeProp fully supervised (Table 8.3): how much of its gain needs no transfer at all
    "shapeprop_oracle_seed0": ("ShapeProp, every mask", SHAPEPROP,
                               seed(0) + train("shapes_train"), "all"),
})
# Choosing MIL_NEGATIVE_FRACTION on the validation split (shapes_val), seed 0.
VALIDATION = {
    **{f"shapeprop_neg{f}": (f"ShapeProp, MIL on {f} of the negatives", SHAPEPROP,
                             seed(0) + ["MODEL.SHAPEPROP.MIL_NEGATIVE_FRACTION", f], "base1")
       for f in ("1.0", "0.25", "0.1")},
    "shapeprop_first": ("ShapeProp, first version", SHAPEPROP, seed(0) + FIRST_VERSION, "base1"),
}


FIRST_SEED0 = "shapeprop_first_base1_seed0"
TORCHVISION = "torchvision"  # the ROIAlign backward timed beside the configured one


class Suite(NamedTuple):
    arms: dict
    max_iter: int  # iterations of every arm
    main_table: Tuple[str, ...]  # arm names without _seed<N>, averaged over their seeds
    test: Tuple[str, ...] = ()  # DATASETS.TEST of every arm (() = the configs')


SUITES = {
    "main": Suite(MAIN, CONFIG_MAX_ITER, ("maskrcnn_base1", "maskrcnn_head4x96_base1",
                                          "shapeprop_base1", "shapeprop_first_base1")),
    "ablations": Suite(ABLATIONS, 1200, ("maskrcnn_base1", "shapeprop_base1", "oracle")),
    "validation": Suite(VALIDATION, 1200, (), ("shapes_val",)),
}


def schedule(max_iter: int) -> list:
    steps = tuple(round(s * max_iter / CONFIG_MAX_ITER) for s in CONFIG_STEPS)
    return ["SOLVER.MAX_ITER", str(max_iter), "SOLVER.STEPS", str(steps)]


def test_sets(suite: Suite) -> list:
    return ["DATASETS.TEST", str(tuple(suite.test))] if suite.test else []


def arm_seed(opts) -> int:
    """The ``SEED`` an arm's options set."""
    return int(opts[list(opts).index("SEED") + 1])


def training_arms(suite: Suite, max_iter: int, seeds=None) -> dict:
    """The suite's arms (those of ``seeds``; ``None``: all) as arms of the runner, on the
    schedule of ``max_iter`` iterations."""
    return {name: Arm(config, opts + schedule(max_iter) + test_sets(suite))
            for name, (_, config, opts, _) in suite.arms.items()
            if seeds is None or arm_seed(opts) in seeds}


def arm_record(arm: Arm) -> dict:
    """What an arm's record keeps of ``arm`` to be recognised by :func:`recorded`."""
    return {"config": arm.config, "opts": list(arm.opts)}


def recorded(run: dict, arm: Arm, masks_on: str) -> bool:
    """Whether ``run`` (an arm's record) holds the evaluation of ``arm``'s config and options
    (and, for an arm with every mask, its evaluation on the split-1 subsets)."""
    return (run.get("arm") == arm_record(arm)
            and "results" in run and (masks_on != "all" or "results_base1" in run))


def train_and_evaluate(suite: Suite, work: Path, record: dict, out: Path, max_iter: int, *,
                       seeds=None, workers: int = 2, threads: int = 1) -> None:
    """Train (or skip, or resume) the arms of ``seeds`` that the record does not hold, then
    evaluate the all-mask arms on the split-1 subsets; a failed arm is recorded and the others
    go on. Each arm's record gets its ``arm`` (config and options), ``results`` (and
    ``results_base1``)."""
    runs = record.setdefault("runs", {})
    arms = {name: arm for name, arm in training_arms(suite, max_iter, seeds).items()
            if not recorded(runs.get(name, {}), arm, suite.arms[name][3])}

    def keep_results(name: str, run: dict) -> None:  # in the record as soon as an arm finishes
        run["arm"] = arm_record(arms[name])
        results = results_file(work / name)
        if results.is_file():
            run["results"] = json.loads(results.read_text())

    train_arms(arms, work, record, out, workers=workers, threads=threads,
               on_finished=keep_results)
    for name in arms:
        _, config, opts, masks_on = suite.arms[name]
        folder, run = work / name, runs[name]
        evaluation = folder / "eval_base1"
        if (masks_on == "all" and (folder / "model_final.pth").is_file()
                and not is_finished(evaluation)):
            run["eval_base1"] = train_net(
                config, opts + train(BASE1) + ["MODEL.WEIGHTS", str(folder / "model_final.pth"),
                                               "OUTPUT_DIR", str(evaluation)],
                evaluation, evaluation / "benchmark.log", eval_only=True, threads=2)
            write_record(out, record)
        results = results_file(evaluation)
        if results.is_file():
            run["results_base1"] = json.loads(results.read_text())
    write_record(out, record)


def mapped_with_masks(cfg, dataset: str, limit: int = 0) -> list:
    """``dataset``'s records at the test resolution with their ground-truth instances."""
    mapper = CheckedDatasetMapper(
        is_train=True, augmentations=[T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST,
                                                           cfg.INPUT.MAX_SIZE_TEST)],
        image_format=cfg.INPUT.FORMAT, use_instance_mask=True, instance_mask_format="bitmask")
    records = DatasetCatalog.get(dataset)
    return [mapper(r) for r in (records[:limit] if limit else records)]


def class_ids(dataset: str, names) -> list:
    classes = MetadataCatalog.get(dataset).thing_classes
    return [classes.index(n) for n in names]


def held_out_classes(test: str) -> list:
    """Class ids of ``test`` without masks in shapes_train_masks_base1 (split-1 novel)."""
    kept = set(MetadataCatalog.get(BASE1).mask_classes)
    return class_ids(test, [c for c in MetadataCatalog.get(test).thing_classes if c not in kept])


def shape_quality(work: Path, record: dict, plots: Path, limit: int) -> None:
    """Best overlap (Fig. 8.9) of the seed-0 models' maps on the held-out classes' test
    instances, given their ground-truth boxes; the Fig. 8.8 instance figure."""
    models = {name: load_trained_model(work / name) for name in
              ("shapeprop_base1_seed0", "shapeprop_chagnostic_base1_seed0",
               "maskrcnn_base1_seed0") if (work / name / "model_final.pth").is_file()}
    if not models:
        print("shape quality skipped: no seed-0 model finished", file=sys.stderr)
        return
    cfg = next(iter(models.values()))[0]
    test = cfg.DATASETS.TEST[0]
    records, novel = mapped_with_masks(cfg, test, limit), held_out_classes(test)
    quality = record.setdefault("shape_quality", {"dataset": test, "images": len(records)})
    rows = {}
    for name, (_, model) in models.items():
        maps = ("mask",) if name.startswith("maskrcnn") else ("saliency", "shape", "mask")
        rows[name] = analysis.overlap_by_instance(model, records, novel, maps)
        quality[name] = analysis.summarize_by_size(rows[name])
    if "shapeprop_base1_seed0" in rows:
        panels = {"saliency": "saliency", "shape": "Shape Activation", "mask": "ShapeProp mask"}
        data = dict(rows["shapeprop_base1_seed0"])
        if "maskrcnn_base1_seed0" in rows:
            data["baseline"] = rows["maskrcnn_base1_seed0"]["mask"]
            panels["baseline"] = "Mask R-CNN mask"
        analysis.plot_best_overlap(
            data, panels, str(plots / "shape_quality.png"),
            f"{test}, held-out (split-1 novel) classes, ground-truth boxes: best overlap with "
            f"the ground-truth mask ({len(data['area'])} instances)")
        instance_figure(models, records, novel, plots / "instances.png")


def instance_figure(models: dict, records: list, novel: list, path: Path,
                    count: int = 6, min_side: int = 24) -> None:
    """Fig. 8.8: the first ``count`` held-out-class test instances of at least ``min_side``^2
    pixels, one per image: crop with box, saliency, Shape Activation, ShapeProp's and the
    baseline's masks, the ground truth."""
    shapeprop = models["shapeprop_base1_seed0"][1]
    baseline = models.get("maskrcnn_base1_seed0", (None, None))[1]
    panels = []
    for mapped in records:
        out = analysis.given_box_maps(shapeprop, mapped)
        areas = out["gt"].flatten(1).sum(1)
        candidates = [i for i in range(len(areas)) if int(out["classes"][i]) in novel
                      and areas[i] >= min_side ** 2]
        if not candidates:
            continue
        i = candidates[0]
        x0, y0, x1, y1 = out["boxes"][i].tolist()
        h, w = out["gt"].shape[-2:]
        margin = 0.25 * max(x1 - x0, y1 - y0)
        cx0, cy0 = max(int(x0 - margin), 0), max(int(y0 - margin), 0)
        cx1, cy1 = min(int(x1 + margin) + 1, w), min(int(y1 + margin) + 1, h)
        image = mapped["image"].permute(1, 2, 0).numpy().copy()
        bx0, by0, bx1, by1 = int(x0), int(y0), min(int(x1), w - 1), min(int(y1), h - 1)
        image[[by0, by1], bx0:bx1 + 1] = (255, 0, 0)
        image[by0:by1 + 1, [bx0, bx1]] = (255, 0, 0)
        crop = (slice(cy0, cy1), slice(cx0, cx1))
        panel = {"image": image[crop], "label": f"image {mapped['image_id']}"}
        for key in ("saliency", "shape", "mask", "gt"):
            panel[key] = out[key][i].float().numpy()[crop]
        if baseline is not None:
            panel["baseline"] = analysis.given_box_maps(baseline, mapped)["mask"][i].numpy()[crop]
        panels.append(panel)
        if len(panels) == count:
            break
    columns = {"image": "image + box", "saliency": "saliency", "shape": "Shape Activation",
               "mask": "ShapeProp mask"}
    if baseline is not None:
        columns["baseline"] = "Mask R-CNN mask"
    columns["gt"] = "ground truth"
    analysis.plot_instances(panels, columns, str(path),
                            "held-out (split-1 novel) classes, ground-truth boxes")


def timing(work: Path, record: dict, images: int, train_iters: int, rounds: int) -> None:
    """Inference (batch 1, ``images`` test images) and training steps (``train_iters`` batches
    of the baseline's training data, SGD; with the configured ROIAlign backward and with
    torchvision's, ``<arm>/torchvision``) of the seed-0 baseline and ShapeProp (and its first
    version when the suite has it), in this process, in interleaved rounds."""
    names = ("maskrcnn_base1_seed0", "shapeprop_base1_seed0")
    missing = [n for n in names if not (work / n / "model_final.pth").is_file()]
    if missing:
        print(f"timing skipped: {missing} did not finish", file=sys.stderr)
        return
    if (work / FIRST_SEED0 / "model_final.pth").is_file():
        names += (FIRST_SEED0,)
    models = {name: load_trained_model(work / name) for name in names}
    cfg = models[names[0]][0]
    mapper = CheckedDatasetMapper(cfg, is_train=False)
    inputs = [mapper(r) for r in DatasetCatalog.get(cfg.DATASETS.TEST[0])[:images]]

    @torch.inference_mode()
    def infer(model, batch):
        for x in batch:
            model([x])

    for _, model in models.values():
        infer(model, inputs[:5])
    runs = interleaved_median_s({n: partial(infer, m, inputs) for n, (_, m) in models.items()},
                                rounds)
    result = record.setdefault("timing", {"threads": torch.get_num_threads()})
    result["parameters"] = {n: {"model": sum(p.numel() for p in m.parameters()),
                                "mask_head": sum(p.numel() for p in
                                                 m.roi_heads.mask_head.parameters())}
                            for n, (_, m) in models.items()}
    result["inference"] = {"images": len(inputs), "rounds": rounds, **{
        n: {"ms_per_image": round(1e3 * r["median_s"] / len(inputs), 2),
            "rounds_ms_per_image": [round(1e3 * t / len(inputs), 2) for t in r["runs_s"]]}
        for n, r in runs.items()}}
    loader = iter(DynnetTrainer.build_train_loader(cfg))
    batches = [next(loader) for _ in range(train_iters)]
    del loader

    def train_steps(model, optimizer, backward):
        use_roi_align_cpu_backward(model, backward)
        for batch in batches:
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    steps = {}
    for n, (arm_cfg, model) in models.items():
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=arm_cfg.SOLVER.BASE_LR * 0.01)
        # the configured ROIAlign backward (the separable one), and torchvision's for reference
        steps[n] = partial(train_steps, model, optimizer, arm_cfg.MODEL.ROI_ALIGN_CPU_BACKWARD)
        steps[f"{n}/{TORCHVISION}"] = partial(train_steps, model, optimizer, TORCHVISION)
    with EventStorage(0):
        for fn in steps.values():
            fn()
        runs = interleaved_median_s(steps, rounds)
    result["train"] = {"iterations": train_iters, "rounds": rounds, **{
        n: {"s_per_iter": round(r["median_s"] / train_iters, 4),
            "rounds_s_per_iter": [round(t / train_iters, 4) for t in r["runs_s"]]}
        for n, r in runs.items()}}


def held_out_metrics(run: dict) -> dict:
    """mask AP on the split-1 novel / base classes, all, and box AP of a finished arm (the
    all-mask arms' numbers from their split-1 evaluation)."""
    results = run.get("results_base1") or run.get("results")
    if not results:
        return {}
    flat = {"segm_AP": results["segm"]["AP"], "bbox_AP": results["bbox"]["AP"]}
    for task in ("segm_novel", "segm_base", "bbox_novel"):
        if task in results:
            flat.update({f"{task}_{k}": v for k, v in results[task].items()})
    return flat


def mean_spread(values) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {(max(values) - min(values)) / 2:.2f}"


def cost_table(cost: dict, runs: dict) -> list:
    """Markdown rows: inference and training time, parameters and peak RSS of the seed-0
    baseline, ShapeProp and (when timed) its first version, with their ratios to the
    baseline."""
    base = "maskrcnn_base1_seed0"
    inf, tr = cost["inference"], cost["train"]
    others = [n for n in ("shapeprop_base1_seed0", FIRST_SEED0) if n in inf]
    labels = {"shapeprop_base1_seed0": "ShapeProp", FIRST_SEED0: "ShapeProp, first version"}
    rows = [(f"inference, ms/image (batch 1, {inf['images']} images)",
             {n: inf[n]["ms_per_image"] for n in inf if isinstance(inf[n], dict)}),
            (f"training, s/iter (same process, {tr['iterations']} batches)",
             {n: tr[n]["s_per_iter"] for n in tr if isinstance(tr[n], dict)}),
            ("training, s/iter with torchvision's ROIAlign backward (same process)",
             {n.rsplit("/", 1)[0]: tr[n]["s_per_iter"] for n in tr
              if n.endswith(f"/{TORCHVISION}")})]
    for key, label in (("mask_head", "mask head (ShapeProp: with saliency and propagation)"),
                       ("model", "whole model")):
        rows.append((f"parameters, {label}",
                     {n: v[key] for n, v in cost.get("parameters", {}).items()}))
    rows.append(("training, median s/iter of the benchmark runs",
                 {n: r["median_s_per_iter"] for n, r in runs.items() if "median_s_per_iter" in r}))
    rows.append(("training, peak RSS of the process tree, MiB",
                 {n: r["peak_rss_mib"] for n, r in runs.items() if "peak_rss_mib" in r}))
    lines = ["| cost | Mask R-CNN | " + " | ".join(f"{labels[n]} | ratio" for n in others)
             + " |", "|---" * (2 + 2 * len(others)) + "|"]
    for label, values in rows:
        if base not in values or any(n not in values for n in others):
            continue
        fmt = "{:,}" if label.startswith("parameters") else "{}"
        cells = [f"{fmt.format(values[n])} | {values[n] / values[base]:.2f}x" for n in others]
        lines.append(f"| {label} | {fmt.format(values[base])} | " + " | ".join(cells) + " |")
    return lines


def report(record: dict) -> str:
    """Markdown tables of a benchmark record (of its ``suite``; a record without one is of the
    ablations' suite, the layout of the benchmark's first version)."""
    suite = SUITES[record.get("suite", "ablations")]
    runs = record.get("runs", {})
    metrics = {name: held_out_metrics(run) for name, run in runs.items()}
    lines = [f"Schedule: {record.get('max_iter')} iterations for every arm.", "",
             "| arm | seeds | mask AP novel | AP50 | AP75 | mask AP base | mask AP all | "
             "box AP novel | box AP all |", "|---" * 9 + "|"]
    for prefix in suite.main_table:
        found = [metrics[n] for n in sorted(metrics) if n.startswith(prefix + "_seed")
                 and metrics[n]]
        cells = [mean_spread([m[k] for m in found if k in m]) for k in (
            "segm_novel_AP", "segm_novel_AP50", "segm_novel_AP75", "segm_base_AP", "segm_AP",
            "bbox_novel_AP", "bbox_AP")]
        lines.append(f"| {suite.arms[prefix + '_seed0'][0]} | {len(found)} | "
                     + " | ".join(cells)
                     + " |")
    lines += ["", "| arm (seed 0) | mask AP, split-1 novel | mask AP, split-1 base | "
              "mask AP all | box AP all |", "|---" * 5 + "|"]
    for name, (label, _, _, masks_on) in suite.arms.items():
        run = runs.get(name, {})
        results = run.get("results_base1") or run.get("results")
        if not results or name.rsplit("_seed", 1)[0] in suite.main_table:
            continue
        # the evaluator's "novel" are the classes without training masks
        tasks = ("segm_base", "segm_novel") if masks_on == "novel1" else ("segm_novel",
                                                                          "segm_base")
        cells = [f"{results[t]['AP']:.2f}" if t in results else "–" for t in tasks]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {results['segm']['AP']:.2f} | "
                     f"{results['bbox']['AP']:.2f} |")
    quality = record.get("shape_quality", {})
    if quality:
        lines += ["", f"Best overlap on {quality['dataset']} held-out-class instances "
                  "(ground-truth boxes):", "",
                  "| model | map | all | small | medium | large |", "|---" * 6 + "|"]
        for name in ("shapeprop_base1_seed0", "shapeprop_chagnostic_base1_seed0",
                     "maskrcnn_base1_seed0"):
            for key in ("saliency", "shape", "mask"):
                if name in quality and key in quality[name]["all"]:
                    cells = [f"{quality[name][b][key]:.3f} ({quality[name][b]['instances']})"
                             if quality[name][b][key] is not None else "–"
                             for b in ("all", "small", "medium", "large")]
                    lines.append(f"| {name} | {key} | " + " | ".join(cells) + " |")
    cost = record.get("timing", {})
    if cost:
        lines += [""] + cost_table(cost, runs)
    return "\n".join(lines)


def run(record: dict, out: Path, work: Path, *, suite: str, max_iter: int, plots_dir: Path,
        quality_images: int, timing_images: int, timing_train_iters: int, rounds: int,
        seeds=None, workers: int = 2, threads: int = 1) -> None:
    """The benchmark of ``suite`` (the arms of ``seeds``; ``None``: all) into ``record``,
    written to ``out`` after every phase. The shape quality and the timing need the seed-0
    models in ``work``; without them the record keeps what it holds."""
    record["machine"] = machine()
    record["suite"], record["max_iter"] = suite, max_iter
    train_and_evaluate(SUITES[suite], work, record, out, max_iter, seeds=seeds, workers=workers,
                       threads=threads)
    shape_quality(work, record, plots_dir, quality_images)
    write_record(out, record)
    timing(work, record, timing_images, timing_train_iters, rounds)
    write_record(out, record)
