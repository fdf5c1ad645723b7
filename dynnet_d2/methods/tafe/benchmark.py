"""TAFE-Net's benchmark on the synthetic shapes (projects/TAFE/README.md): the generalized
zero-shot task (thesis Table 5.2 metrics) on each few-shot split's novel classes, and the
compositional zero-shot tasks, (colour, shape) and (texture, shape) pairs (Table 5.4 analogue),
each against its baselines on the same cached features, the embedding-loss ablation
(Table 5.3: beta = 0) and, on the pairs, the task-encoding and feature-extractor ablation
(Table 5.5: one-hot vs attribute-structured descriptions, :mod:`.descriptions`; the ImageNet
MobileNetV2 vs the same network fine-tuned on the seen pairs); and few-shot Fashion-MNIST
(Table 5.6 analogue, :mod:`.fewshot`): a ResNet-20 trained on the 6 base classes, its features
cached, every few-shot method on the same episodes (K shots of each of the 4 novel classes, one
episode per seed).

Every arm trains with tools/train_net.py into ``<work dir>/<arm>`` through
:func:`dynnet_d2.engine.arms.train_arms` (a finished arm is not trained again, an interrupted
one resumes, a failed one is recorded and the others go on); its metrics are read back from the
run's own ``inference/<dataset>/results.json``, validation and test. Nothing is chosen on the
test crops: every arm uses its config's settings (the thesis' optimizer), unchanged.
"""
import json
from pathlib import Path
from typing import Dict, List, Sequence

import torch
from detectron2.data import MetadataCatalog

from ...engine.arms import Arm, is_finished, train_arms, write_record
from ...engine.feature_cache import pooled_features
from ...engine.runs import load_trained_model
from ...modeling.freeze import freeze_module
from ...utils.stats import describe
from . import fewshot
from .analysis import plot_task_embeddings

ZSL_SPLITS = (1, 2, 3)
ZSL_HEADS = ("tafe", "bilinear")
PAIR_ATTRIBUTES = ("texture", "color")
PAIR_HEADS = ("tafe", "bilinear", "visualproduct")
ENCODINGS = {"onehot": "one-hot", "structured": "attribute-structured"}
FEATURES = {"imagenet": "ImageNet MobileNetV2", "seen": "fine-tuned on the seen pairs"}
HEAD_NAMES = {"tafe": "TAFE-Net", "tafe_beta0": "TAFE-Net, no embedding loss (beta 0)",
              "bilinear": "bilinear compatibility (label embedding)",
              "visualproduct": "visual product"}
ZSL_METRICS = ("zsl_top1", "acc_seen", "acc_unseen", "H")
PAIR_METRICS = ("zsl_top1", "zsl_top2", "zsl_top3", "zsl_mAP", "H")
FEWSHOT_BACKBONE = "fewshot_backbone"
FEWSHOT_SHOTS = (1, 2, 5)
FEWSHOT_SEEDS = tuple(range(10))
FEWSHOT_METRICS = ("novel", "novel_among_novel", "base", "all")
#: Training seeds of the zero-shot and compositional main arms (the ablations: seed 0 only).
SEEDS = (0, 1, 2)


def seeded(name: str, seed: int) -> str:
    """The arm ``name`` trained with ``SEED`` ``seed`` (seed 0 keeps the plain name)."""
    return name if seed == 0 else f"{name}_seed{seed}"


def zsl_config(head: str) -> str:
    return f"configs/TAFE/{head}_MobileNetV2_6000it_shapeszsl.yaml"


def pair_config(head: str, attribute: str) -> str:
    return f"configs/TAFE/{head}_MobileNetV2_6000it_shapes{attribute}pairs.yaml"


def structured_descriptions(attribute: str) -> str:
    """The attribute-structured descriptions file of the (``attribute``, shape) pairs."""
    return f"configs/TAFE/shapes_{attribute}pairs_structured.json"


def seen_backbone_arm(attribute: str) -> str:
    return f"pairs_{attribute}_seenbackbone"


def pair_arm(attribute: str, head: str, encoding: str = "onehot",
             features: str = "imagenet") -> str:
    """``pairs_{attribute}_{head}``, ``_structured`` and/or ``_seenfeatures`` appended for the
    Table 5.5 variants."""
    return (f"pairs_{attribute}_{head}" + ("_structured" if encoding == "structured" else "")
            + ("_seenfeatures" if features == "seen" else ""))


def table55_rows(attribute: str) -> List[tuple]:
    """``(encoding, features, head)`` of the Table 5.5 analogue of ``attribute``: TAFE-Net under
    every encoding and feature extractor, the label-embedding model under every encoding and the
    visual product (which reads no description) under every feature extractor."""
    rows = []
    for features in FEATURES:
        for encoding in ENCODINGS:
            rows += [(encoding, features, head) for head in ("tafe", "bilinear")
                     if head == "tafe" or features == "imagenet" or encoding == "onehot"]
        rows.append(("onehot", features, "visualproduct"))
    return rows


def arms(ablation: bool = True) -> Dict[str, Arm]:
    """The benchmark's arms: ``zsl{split}_{head}`` and ``pairs_{attribute}_{head}`` (``_seed{s}``
    appended for the seeds after 0, :data:`SEEDS`); when
    ``ablation``, ``_tafe_beta0`` beside every TAFE-Net arm and the pairs' Table 5.5 arms
    (:func:`table55_rows`, the seen-trained features from ``pairs_{attribute}_seenbackbone``)."""
    table: Dict[str, Arm] = {}
    for split in ZSL_SPLITS:
        for head in ZSL_HEADS:
            for seed in SEEDS:
                table[seeded(f"zsl{split}_{head}", seed)] = Arm(
                    zsl_config(head), ["FEWSHOT.SPLIT", split, "SEED", seed])
        if ablation:
            table[f"zsl{split}_tafe_beta0"] = Arm(zsl_config("tafe"), [
                "FEWSHOT.SPLIT", split, "SEED", 0, "MODEL.TAFE.BETA", 0.0])
    for attribute in PAIR_ATTRIBUTES:
        for head in PAIR_HEADS:
            for seed in SEEDS:
                table[seeded(f"pairs_{attribute}_{head}", seed)] = Arm(
                    pair_config(head, attribute), ["SEED", seed])
        if ablation:
            table[f"pairs_{attribute}_tafe_beta0"] = Arm(pair_config("tafe", attribute),
                                                         ["SEED", 0, "MODEL.TAFE.BETA", 0.0])
            backbone = seen_backbone_arm(attribute)
            table[backbone] = Arm(
                f"configs/TAFE/classifier_MobileNetV2_2000it_shapes{attribute}pairs.yaml",
                ["SEED", 0])
            for encoding, features, head in table55_rows(attribute):
                name = pair_arm(attribute, head, encoding, features)
                if name not in table:
                    opts = ["SEED", 0] + (["MODEL.TAFE.DESCRIPTIONS",
                                           structured_descriptions(attribute)]
                                          if encoding == "structured" else [])
                    table[name] = Arm(pair_config(head, attribute), opts,
                                      after=backbone if features == "seen" else None)
    table[FEWSHOT_BACKBONE] = Arm("configs/TAFE/classifier_R20cifar_3000it_fashionmnistbase.yaml",
                                  ["SEED", 0])
    return table


def run_metrics(folder: Path) -> Dict[str, Dict[str, float]]:
    """``{"val": metrics, "test": metrics}`` of a finished run (its per-dataset results)."""
    found = {}
    for dataset in sorted((folder / "inference").glob("*/results.json")):
        split = dataset.parent.name.rsplit("_", 1)[-1]
        metrics = json.loads(dataset.read_text())["classification"]
        found[split] = {k: v for k, v in metrics.items()
                        if k in set(ZSL_METRICS) | set(PAIR_METRICS) | {"top1", "num_images"}}
    return found


def measure(table: Dict[str, Arm], record: dict, out: Path, work_dir: Path, *,
            workers: int = 1, threads: int = 2) -> None:
    """Train ``table``'s arms and record every finished arm's metrics in
    ``record["results"]``; ``out`` is rewritten after every arm and at the end."""
    train_arms(table, work_dir, record, out, workers=workers, threads=threads)
    results = record.setdefault("results", {})
    for name in table:
        if name != FEWSHOT_BACKBONE and is_finished(work_dir / name):
            results[name] = run_metrics(work_dir / name)
    write_record(out, record)
    if FEWSHOT_BACKBONE in table and (work_dir / FEWSHOT_BACKBONE / "model_final.pth").is_file():
        measure_fewshot(work_dir / FEWSHOT_BACKBONE, record, out)


def figures(work_dir: Path, plots: Path) -> List[Path]:
    """The figures of the finished arms: Fig. 5.3's analogue from ``zsl1_tafe``."""
    run = work_dir / "zsl1_tafe"
    if not (run / "model_final.pth").is_file():
        return []
    return [embedding_figure(run, plots / "tafe_embeddings_zsl1.png")]


def frozen_trained_model(run: Path):
    """``(cfg, model)`` of the finished run ``run`` (its own config and weights), the backbone
    frozen so its pooled features can be cached."""
    cfg, model = load_trained_model(run)
    model.backbone = freeze_module(model.backbone)
    return cfg, model


def embedding_figure(run: Path, path: Path, tasks_per_group: int = 2,
                     images_per_class: int = 60) -> Path:
    """Fig. 5.3 analogue from a trained zero-shot TAFE-Net run: the test crops of
    ``tasks_per_group`` seen and as many unseen classes, under those classes' tasks
    (:func:`.analysis.plot_task_embeddings`)."""
    cfg, model = frozen_trained_model(run)
    test = cfg.DATASETS.TEST[-1]
    rows = pooled_features(cfg, model, test)
    meta = MetadataCatalog.get(test)
    classes = list(meta.thing_classes)
    tasks = ([classes.index(c) for c in meta.seen_classes[:tasks_per_group]]
             + [classes.index(c) for c in meta.unseen_classes[:tasks_per_group]])
    keep = torch.cat([torch.nonzero(rows.labels == t)[:images_per_class, 0] for t in tasks])
    names = [f"{c} (unseen)" if c in set(meta.unseen_classes) else c for c in classes]
    return plot_task_embeddings(model.head, rows.features[keep], rows.labels[keep], tasks,
                                names, path)


def fewshot_features(run: Path):
    """``(train features, train labels, test features, test labels, novel classes, C)`` of
    Fashion-MNIST under the trained backbone of ``run`` (frozen, cached)."""
    cfg, model = frozen_trained_model(run)
    train = pooled_features(cfg, model, "fashion_mnist_train")
    test = pooled_features(cfg, model, "fashion_mnist_test")
    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
    classes = list(meta.thing_classes)
    novel = [classes.index(c) for c in meta.unseen_classes]
    return train.features, train.labels, test.features, test.labels, novel, len(classes)


def measure_fewshot(run: Path, record: dict, out: Path, methods: Sequence[str] = (),
                    shots: Sequence[int] = FEWSHOT_SHOTS,
                    seeds: Sequence[int] = FEWSHOT_SEEDS) -> None:
    """Every few-shot method on every (K, seed) episode; ``record["fewshot"]["<method>/K<k>/
    seed<s>"]`` = :func:`.fewshot.accuracies`; an episode already recorded is skipped, ``out``
    is rewritten after each."""
    train_x, train_y, test_x, test_y, novel, num_classes = fewshot_features(run)
    done = record.setdefault("fewshot", {})
    for k in shots:
        for seed in seeds:
            ep = fewshot.episode(train_x, train_y, novel, k, seed, num_classes)
            for method in methods or fewshot.FEWSHOT_METHODS:
                key = f"{method}/K{k}/seed{seed}"
                if key not in done:
                    scores = fewshot.FEWSHOT_METHODS[method](ep, test_x)
                    done[key] = fewshot.accuracies(scores, test_y, novel)
                    write_record(out, record)


def _cell(values: List[float]) -> str:
    stats = describe(values)  # undefined values left out
    if stats.n == 0:
        return "–"
    if stats.n == 1:
        return f"{stats.mean:.1f}"
    return f"{stats.mean:.1f} ± {stats.ci95:.1f}"


def report(record: dict) -> str:
    """The README's Markdown tables from ``record["results"]`` (test crops; validation in
    parentheses for the headline metric)."""
    results = record.get("results", {})
    lines = ["Generalized zero-shot, few-shot split f's 5 novel shapes unseen (test crops; "
             "mean ± 95 % Student-t CI over the runs present: splits x training seeds):", "",
             "| method | runs | " + " | ".join(ZSL_METRICS) + " | val H |",
             "|---|---|" + "---|" * (len(ZSL_METRICS) + 1)]
    for head in (*ZSL_HEADS, "tafe_beta0"):
        runs = [results[name] for s in ZSL_SPLITS for seed in SEEDS
                if (name := seeded(f"zsl{s}_{head}", seed)) in results]
        if runs:
            cells = [_cell([r["test"].get(m) for r in runs]) for m in ZSL_METRICS]
            lines.append(f"| {HEAD_NAMES[head]} | {len(runs)} | " + " | ".join(cells)
                         + f" | {_cell([r['val'].get('H') for r in runs])} |")
    for attribute in PAIR_ATTRIBUTES:
        lines += ["", f"Compositional zero-shot, ({attribute}, shape) pairs, a quarter unseen "
                  f"(test crops; zsl_*: among the unseen pairs only; mean ± 95 % Student-t CI "
                  f"over the training seeds present):", "",
                  "| method | seeds | " + " | ".join(PAIR_METRICS) + " | val zsl_top1 |",
                  "|---|---|" + "---|" * (len(PAIR_METRICS) + 1)]
        for head in (*PAIR_HEADS, "tafe_beta0"):
            runs = [results[name] for seed in SEEDS
                    if (name := seeded(f"pairs_{attribute}_{head}", seed)) in results]
            if runs:
                cells = [_cell([r["test"].get(m) for r in runs]) for m in PAIR_METRICS]
                lines.append(f"| {HEAD_NAMES[head]} | {len(runs)} | " + " | ".join(cells)
                             + f" | {_cell([r['val'].get('zsl_top1') for r in runs])} |")
    return "\n".join(lines + ["", table55_report(record), "", fewshot_report(record)])


def table55_report(record: dict) -> str:
    """The Table 5.5 analogue: per attribute, every finished (encoding, features, method) arm;
    the seen-trained backbone's own top-1 on the validation crops of seen pairs alongside."""
    results, lines = record.get("results", {}), []
    for attribute in PAIR_ATTRIBUTES:
        rows = [(row, results.get(pair_arm(attribute, row[2], *row[:2])))
                for row in table55_rows(attribute)]
        if not any(run for (encoding, features, _), run in rows
                   if (encoding, features) != ("onehot", "imagenet")):
            continue
        lines += [f"Task encodings and feature extractors, ({attribute}, shape) pairs (Table 5.5 "
                  f"analogue; test crops, zsl_*: among the unseen pairs):", "",
                  "| task encoding | features | method | zsl_mAP | zsl_top1 | zsl_top2 | "
                  "zsl_top3 | H | val zsl_top1 |", "|---|---|---|---|---|---|---|---|---|"]
        for (encoding, features, head), run in rows:
            if run:
                cells = [_cell([run["test"].get(m)]) for m in
                         ("zsl_mAP", "zsl_top1", "zsl_top2", "zsl_top3", "H")]
                encoding_cell = "–" if head == "visualproduct" else ENCODINGS[encoding]
                lines.append(f"| {encoding_cell} | {FEATURES[features]} | {HEAD_NAMES[head]} | "
                             + " | ".join(cells) + f" | {_cell([run['val'].get('zsl_top1')])} |")
        backbone = results.get(seen_backbone_arm(attribute))
        if backbone:
            lines += ["", f"The fine-tuned backbone's own linear classifier: top-1 "
                      f"{_cell([backbone['val'].get('top1')])} on the validation crops (all "
                      f"pairs; unseen pairs never trained), zsl_top1 "
                      f"{_cell([backbone['test'].get('zsl_top1')])} on test.", ""]
    return "\n".join(lines)


def fewshot_report(record: dict) -> str:
    """The few-shot table: per method and K, mean ± 95 % Student-t CI over the seeds."""
    done = record.get("fewshot", {})
    if not done:
        return ""
    lines = ["Few-shot Fashion-MNIST, 4 novel classes given by K images each (test images; "
             "mean ± 95 % Student-t CI over the seeds; novel: novel images predicted among all "
             "10 classes):", "", "| method | K | seeds | " + " | ".join(FEWSHOT_METRICS) + " |",
             "|---|---|---|" + "---|" * len(FEWSHOT_METRICS)]
    for method in fewshot.FEWSHOT_METHODS:
        for k in FEWSHOT_SHOTS:
            runs = [v for key, v in done.items() if key.startswith(f"{method}/K{k}/")]
            if runs:
                lines.append(f"| {method} | {k} | {len(runs)} | " + " | ".join(
                    _cell([r[m] for r in runs]) for m in FEWSHOT_METRICS) + " |")
    return "\n".join(lines)


def selected(table: Dict[str, Arm], names: Sequence[str]) -> Dict[str, Arm]:
    """The arms of ``table`` whose name starts with one of ``names`` (all when empty)."""
    return {k: v for k, v in table.items() if not names or k.startswith(tuple(names))}
