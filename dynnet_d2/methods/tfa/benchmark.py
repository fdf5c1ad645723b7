"""TFA benchmark on the synthetic shapes, one seed (thesis Table 7.2's comparison;
tools/benchmark_tfa.py is its command line).

Base training on the base classes of the split (reused when finished), checkpoint surgery,
then for each shot: TFA w/ cos, TFA w/ fc and FRCN+ft-full fine-tuning on the K-shot set of the
seed, each evaluated on ``shapes_test_all<split>`` (AP on all classes, bAP on base, nAP on
novel), and base-only (the surgery checkpoint, not fine-tuned, with the FC head the base model
was trained with: the TFA w/ fc config). Every run is a ``tools/train_net.py`` process
(:func:`dynnet_d2.engine.arms.train_net`) into the ``OUTPUT_DIR`` its config resolves to: wall
time, peak RSS of its process tree and median s/iter (Detectron2's ``metrics.json``) are
recorded with its metrics under its name (``"base training"``, ``"base only"``,
``"TFA w/ cos, 1-shot"``, ...). A run already recorded with results is skipped unless named
to be run again; an interrupted training resumes.
"""
import os
import platform
import sys
from pathlib import Path
from typing import Sequence

from ...config import load_config
from ...engine.arms import REPO, train_net, write_record
from ...evaluation.fewshot import check_results_defined, generalized_table
from .pipeline import randinit_surgery

CONFIGS = REPO / "configs" / "TFA"
BASE = CONFIGS / "faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"
METHODS = {
    "cos": ("TFA w/ cos", CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"),
    "fc": ("TFA w/ fc", CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_fc_all_100itxK_shapes.yaml"),
    "full": ("FRCN+ft-full",
             CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_full_all_100itxK_shapes.yaml"),
}
# Base-only is evaluated with the head the base model was trained with (FC, with its bias).
BASE_ONLY = METHODS["fc"][1]


def measured_run(config: Path, opts, log: Path, eval_only: bool = False) -> dict:
    """Run tools/train_net.py on ``config`` (with ``--resume``, or ``--eval-only``) into the
    ``OUTPUT_DIR`` it resolves to: measurements, median s/iter and metrics."""
    output_dir = load_config(str(config), opts).OUTPUT_DIR
    record = train_net(config, opts, output_dir, log, eval_only=eval_only, resume=not eval_only)
    return {"output_dir": output_dir, **record}


def run(record: dict, output: str, *, split: int, seed: int, shots: Sequence[int],
        methods: Sequence[str], rerun: Sequence[str], opts: Sequence) -> int:
    """The benchmark into ``record`` (its ``runs`` by name), written to ``output`` after every
    run; ``opts``: overrides of every fine-tuning. Prints the generalized table; returns the exit
    code (0: every run succeeded)."""
    logs = Path("output/benchmarks") / Path(output).stem
    fewshot = ["FEWSHOT.SPLIT", split, "FEWSHOT.SEED", seed]
    record.update(split=split, seed=seed, runs=record.get("runs", {}),
                  machine={"cpus": os.cpu_count(), "platform": platform.platform()})

    def measure(key: str, config: Path, run_opts, eval_only: bool = False) -> dict:
        if "results" not in record["runs"].get(key, {}) or key in rerun:
            print(f"[benchmark_tfa] {key} ...", flush=True)
            record["runs"][key] = measured_run(config, run_opts, logs / f"{key}.log", eval_only)
            write_record(output, record)
        return record["runs"][key]

    base = measure("base training", BASE, fewshot)
    if "error" in base:
        print(base["error"], file=sys.stderr)
        return 1
    # train_net runs in the checkout: a relative OUTPUT_DIR is under it, not under this cwd
    surgery = randinit_surgery(str(REPO / base["output_dir"] / "model_final.pth"),
                               f"shapes_train_base{split}", f"shapes_train_all{split}")
    fine_tune = fewshot + ["MODEL.WEIGHTS", str(surgery)]
    measure("base only", BASE_ONLY,
            fine_tune + ["FEWSHOT.SHOT", 1, "OUTPUT_DIR", str(Path(base["output_dir"]) /
                                                              "base_only")], eval_only=True)
    for shot in shots:
        for method in methods:
            name, config = METHODS[method]
            measure(f"{name}, {shot}-shot", config, fine_tune + ["FEWSHOT.SHOT", shot] + list(opts))
    table = {key: r["results"] for key, r in record["runs"].items()
             if "results" in r and key != "base training"}
    try:
        for key, results in table.items():
            check_results_defined(results, f"run {key!r} of {output}")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    print(generalized_table(table))
    return 0 if all("error" not in r for r in record["runs"].values()) else 1
