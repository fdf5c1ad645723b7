"""FSRW's benchmark beyond the seed table (projects/FSRW/README.md; ``tools/benchmark_fsrw.py``):

* **learning speed** (Fig. 6.3): the reweighting detectors and FRCN+ft-full fine-tuned on one
  K-shot set, evaluated every ``eval_period`` iterations on the validation and the test set:
  nAP50 and bAP50 against iterations (``learning_speed.png``); the validation curve's best
  iteration is the fine-tuning length it chooses (never the test curve's);
* **cost**: s/iter and peak RSS (of the training process tree) of phase 1 (a short run of each
  phase-1 config, TFA's base training beside them) and of the fine-tunings above;
* **inference**: ms/image at batch 1 of the fine-tuned detectors, interleaved rounds, and of the
  one-stage detector with N = 5, 10, 20 class vectors (its prediction module runs once per class);
* **class vectors** (Fig. 6.4): the fine-tuned one-stage detector's per-shot vectors of its
  K-shot set, the class means as a heat map, and a t-SNE of both.

The seed table and the ablations are sweeps (``tools/run_experiments.py``); this benchmark
starts from the phase-1 models and TFA's base model that the sweep trains, and says which
command trains them when one is missing. Arms train with :func:`~dynnet_d2.engine.arms
.train_arms` (finished arms are skipped, interrupted ones resume); the record is rewritten
atomically after every step.
"""
import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
from detectron2.data import DatasetCatalog

from ...config import load_config
from ...engine.arms import REPO, Arm, machine, train_arms, write_record
from ...engine.fewshot_methods import FEWSHOT_METHODS, fewshot_base
from ...engine.runs import load_trained_model, run_config
from ...utils.measure import interleaved_median_s
from .analysis import plot_class_vectors, plot_learning_curves, plot_tsne, tsne_with_class_means
from .support import read_image_tensor

# sweep method -> label of the fine-tuned detectors compared
DETECTORS = {"fsrw": "FSRW (one-stage)", "meta_rcnn": "Meta R-CNN style (two-stage)",
             "full": "FRCN+ft-full"}
CLASS_COUNTS = (5, 10, 20)  # N of the one-stage detector's inference timing


class MissingBaseError(FileNotFoundError):
    """A phase-1 or base model the benchmark starts from is not trained yet."""


def phase_1_checkpoint(method: str, split: int) -> Path:
    """The ``model_final.pth`` of ``method``'s base (phase 1) for ``split``, as the sweep trains
    it; :class:`MissingBaseError` naming the command when it does not exist."""
    base = FEWSHOT_METHODS[method].base
    cfg = load_config(fewshot_base(base).config, ["FEWSHOT.SPLIT", split])
    path = REPO / cfg.OUTPUT_DIR / "model_final.pth"  # an absolute OUTPUT_DIR stays as it is
    if not path.is_file():
        raise MissingBaseError(
            f"{path} does not exist: train the bases first, e.g. tools/run_experiments.py "
            f"--sweep-dir output/sweeps/fsrw_split{split} --splits {split} --shots 10 --seeds 0 "
            f"--methods {' '.join(DETECTORS)}")
    return path


def start_weights(method: str, split: int) -> Path:
    """What ``method``'s fine-tuning starts from, prepared as the sweep prepares it: phase 1's
    model (with rows for the novel classes for a per-class predictor), or for TFA's methods the
    base model after randinit surgery."""
    checkpoint = phase_1_checkpoint(method, split)
    base = fewshot_base(FEWSHOT_METHODS[method].base)
    return Path(base.prepare(str(checkpoint), f"shapes_train_base{split}",
                             f"shapes_test_all{split}"))


def fine_tuning_arms(split: int, shot: int, seed: int, eval_period: int) -> Dict[str, Arm]:
    """One fine-tuning per detector on the ``shot``-shot set of ``seed``, evaluated every
    ``eval_period`` iterations on the validation set (which chooses the length) and the test
    set."""
    opts = ["FEWSHOT.SPLIT", split, "FEWSHOT.SHOT", shot, "FEWSHOT.SEED", seed,
            "TEST.EVAL_PERIOD", eval_period,
            "DATASETS.TEST", (f"shapes_val_all{split}", f"shapes_test_all{split}")]
    return {f"{method}_{shot}shot_seed{seed}": Arm(
        FEWSHOT_METHODS[method].config, opts + ["MODEL.WEIGHTS", str(start_weights(method, split))])
        for method in DETECTORS}


def phase_1_cost_arms(split: int, iterations: int) -> Dict[str, Arm]:
    """A short run of each detector's phase-1 config (TFA's base training for FRCN+ft-full), as
    the sweep would start it."""
    opts = ["FEWSHOT.SPLIT", split, "SOLVER.MAX_ITER", iterations, "SOLVER.STEPS", (),
            "SOLVER.CHECKPOINT_PERIOD", iterations, "TEST.EVAL_PERIOD", 0]
    return {f"{method}_phase1_{iterations}it": Arm(
        fewshot_base(FEWSHOT_METHODS[method].base).config, opts) for method in DETECTORS}


def learning_curve(folder: Path) -> Dict[str, List[dict]]:
    """``{test set: [{"iteration", "nAP50", "bAP50", "AP"}]}`` of every evaluation in the run's
    ``metrics.json`` (Detectron2 prefixes the metrics with the test set's name when there are
    several), ``iteration`` the iterations trained before it: Detectron2 stores a periodic
    evaluation at the 0-based step it ran after, the evaluation after training at
    ``SOLVER.MAX_ITER`` (of the run's own config, :func:`~dynnet_d2.engine.runs.run_config`)."""
    max_iter = run_config(folder).SOLVER.MAX_ITER
    curves: Dict[str, List[dict]] = {}
    for line in (folder / "metrics.json").read_text().splitlines():
        entry = json.loads(line)
        trained = entry["iteration"] + (entry["iteration"] != max_iter)
        for key in entry:
            if key == "bbox/nAP50" or key.endswith("/bbox/nAP50"):
                prefix = key[:-len("nAP50")]
                curves.setdefault(prefix[:-len("/bbox/")] or "test", []).append({
                    "iteration": trained, "nAP50": entry[key],
                    "bAP50": entry[prefix + "bAP50"], "AP": entry[prefix + "AP"]})
    return curves


def best_iteration(curve: Sequence[dict]) -> dict:
    """The evaluation of highest nAP50 (the earliest of equal ones): the fine-tuning length a
    validation curve chooses."""
    return max(curve, key=lambda point: (point["nAP50"], -point["iteration"]))


def batch_1_inputs(split: int, count: int) -> List[dict]:
    """The first ``count`` images of ``shapes_test_all<split>`` as batch-1 model inputs."""
    inputs = []
    for record in DatasetCatalog.get(f"shapes_test_all{split}")[:count]:
        inputs.append({"image": read_image_tensor(record["file_name"], "RGB"),
                       "height": record["height"], "width": record["width"]})
    return inputs


def inference_timing(folders: Dict[str, Path], inputs: Sequence[dict], rounds: int,
                     threads: int) -> Dict[str, dict]:
    """ms/image at batch 1 of each fine-tuned detector in ``folders`` and of the one-stage one
    with N of :data:`CLASS_COUNTS` class vectors, in interleaved rounds."""
    torch.set_num_threads(threads)
    models = {name: load_trained_model(folder)[1] for name, folder in folders.items()}
    calls = {}

    def serve(model, vectors=None):
        def call():
            head = getattr(model, "head", None)
            if vectors is not None:
                head.episode_vectors = vectors
            with torch.no_grad():
                for x in inputs:
                    model([x])
            if vectors is not None:
                head.episode_vectors = None
        return call

    for name, model in models.items():
        calls[name] = serve(model)
        if name.startswith("fsrw_"):
            stored = model.class_vectors.vectors
            for n in CLASS_COUNTS:
                calls[f"{name} N={n}"] = serve(model, stored[:n])
    timed = interleaved_median_s(calls, rounds)
    return {name: {"ms_per_image": 1000 * t["median_s"] / len(inputs),
                   "rounds_s": t["runs_s"]} for name, t in timed.items()}


def class_vector_figures(folder: Path, plots_dir: Path, title: str) -> dict:
    """Fig. 6.4 from the fine-tuned one-stage detector in ``folder``: the vectors of every
    instance of its K-shot set, their class means (a heat map) and a t-SNE of both."""
    _, model = load_trained_model(folder)
    pool = model.supports.pool
    per_shot, labels = [], []
    with torch.no_grad():
        for cls, found in enumerate(pool.instances):
            per_shot.append(model.reweighter(model.support_tensors(found)).numpy())
            labels += [cls] * len(found)
    per_shot, labels = np.concatenate(per_shot), np.array(labels)
    names = pool.class_names
    means = model.class_vectors.vectors.numpy()
    plots_dir.mkdir(parents=True, exist_ok=True)
    plot_class_vectors(means, names, str(plots_dir / "class_vectors.png"), title)
    points, mean_points = tsne_with_class_means(per_shot, labels, len(names))
    plot_tsne(points, labels, mean_points, names, str(plots_dir / "class_vectors_tsne.png"),
              title)
    return {"instances": int(len(labels)), "classes": names,
            "figures": ["class_vectors.png", "class_vectors_tsne.png"]}


def run(record: dict, out: Path, work_dir: Path, plots_dir: Path, *, split: int, shot: int,
        seed: int, eval_period: int, cost_iterations: int, timing_images: int, rounds: int,
        threads: int, workers: int) -> None:
    """Every part of the module docstring into ``record`` (written to ``out`` after each)."""
    record["machine"] = machine()
    record["settings"] = {"split": split, "shot": shot, "seed": seed, "eval_period": eval_period,
                          "cost_iterations": cost_iterations, "timing_images": timing_images,
                          "rounds": rounds, "threads": threads}
    fine_tunings = fine_tuning_arms(split, shot, seed, eval_period)
    arms = {**phase_1_cost_arms(split, cost_iterations), **fine_tunings}
    done = train_arms(arms, work_dir, record, out, workers=workers, threads=2 // workers or 1)
    record["learning_speed"] = {name: learning_curve(work_dir / name)
                                for name in fine_tunings if done.get(name)}
    record["best_on_validation"] = {
        name: best_iteration(curves[f"shapes_val_all{split}"])
        for name, curves in record["learning_speed"].items()}
    if record["learning_speed"]:
        plots_dir.mkdir(parents=True, exist_ok=True)
        plot_learning_curves(record["learning_speed"], str(plots_dir / "learning_speed.png"),
                             f"{shot}-shot fine-tuning, split {split}, seed {seed}")
        record["learning_speed_figure"] = "learning_speed.png"
    write_record(out, record)
    finished = {name: work_dir / name for name in fine_tunings if done.get(name)}
    record["inference"] = inference_timing(finished, batch_1_inputs(split, timing_images), rounds,
                                           threads)
    write_record(out, record)
    one_stage = f"fsrw_{shot}shot_seed{seed}"
    if one_stage in finished:
        record["class_vectors"] = class_vector_figures(
            finished[one_stage], plots_dir, f"FSRW class vectors, {shot}-shot split {split} "
                                            f"seed {seed}")
        write_record(out, record)


def report(record: dict) -> str:
    """Markdown tables of the record: the final nAP50/bAP50 and cost of each fine-tuning, the
    phase-1 cost, the inference times."""
    lines = ["| run | s/iter | peak RSS (MiB) | best val nAP50 (iteration) |",
             "|---|---|---|---|"]
    for name, run in record.get("runs", {}).items():
        best = record.get("best_on_validation", {}).get(name)
        chosen = f"{best['nAP50']:.1f} ({best['iteration']})" if best else ""
        lines.append(f"| {name} | {run.get('median_s_per_iter')} | {run.get('peak_rss_mib')} | "
                     f"{chosen} |")
    lines += ["", "| inference | ms/image |", "|---|---|"]
    for name, timing in record.get("inference", {}).items():
        lines.append(f"| {name} | {timing['ms_per_image']:.1f} |")
    return "\n".join(lines)
