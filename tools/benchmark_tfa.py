#!/usr/bin/env python
"""Benchmark: TFA on the synthetic shapes, one seed (thesis Table 7.2's comparison), as a JSON.

Base training on the base classes of ``--split`` (reused when finished), checkpoint surgery,
then for each shot: TFA w/ cos, TFA w/ fc and FRCN+ft-full fine-tuning on the K-shot set of
``--seed``, each evaluated on ``shapes_test_all<split>`` (AP on all classes, bAP on base, nAP on
novel), and base-only (the surgery checkpoint, not fine-tuned, with the FC head the base model
was trained with: the TFA w/ fc config). Every run is a
``tools/train_net.py`` process: wall time, peak RSS of its process tree and median s/iter
(Detectron2's ``metrics.json``) are recorded with its metrics.

    python tools/benchmark_tfa.py --output benchmarks/tfa_shapes_split1_seed0_2cpu.json \\
        [--split 1] [--seed 0] [--shots 1 3 10] [--methods cos fc full] [--opts KEY VALUE ...]

Resumable: a run already recorded with results is skipped (``--rerun NAME ...`` runs the named
ones again, e.g. ``--rerun "base only"``); an interrupted training resumes.
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

from dynnet_d2.config import load_config
from dynnet_d2.engine.tfa import randinit_surgery
from dynnet_d2.evaluation.fewshot import check_results_defined, generalized_table
from dynnet_d2.utils.io import atomic_write_json
from dynnet_d2.utils.measure import measure_train_net

REPO = Path(__file__).resolve().parent.parent
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


def train_net(config: Path, opts, log: Path, eval_only: bool = False) -> dict:
    """Run tools/train_net.py on ``config``: measurements, median s/iter and metrics."""
    cfg = load_config(str(config), opts)
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", str(config)]
    cmd += (["--eval-only"] if eval_only else ["--resume"]) + [str(o) for o in opts]
    record = measure_train_net(cmd, Path(cfg.OUTPUT_DIR), log, cwd=REPO)
    return {"output_dir": cfg.OUTPUT_DIR, **record}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--output", default="output/benchmarks/tfa.json")
    parser.add_argument("--rerun", nargs="+", default=[], metavar="NAME",
                        help="recorded runs to run again, e.g. 'base only' 'TFA w/ cos, 1-shot'")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="overrides KEY VALUE ... for every fine-tuning (last argument)")
    args = parser.parse_args()
    logs = Path("output/benchmarks") / Path(args.output).stem
    fewshot = ["FEWSHOT.SPLIT", args.split, "FEWSHOT.SEED", args.seed]
    report = json.loads(Path(args.output).read_text()) if Path(args.output).is_file() else {}
    report.update(split=args.split, seed=args.seed, runs=report.get("runs", {}),
                  machine={"cpus": os.cpu_count(), "platform": platform.platform()})

    unknown = [name for name in args.rerun if name not in report["runs"]]
    if unknown:
        print(f"--rerun {unknown}: not recorded in {args.output} (recorded: "
              f"{sorted(report['runs'])})", file=sys.stderr)
        return 2

    def run(key: str, config: Path, opts, eval_only: bool = False) -> dict:
        if "results" not in report["runs"].get(key, {}) or key in args.rerun:
            print(f"[benchmark_tfa] {key} ...", flush=True)
            report["runs"][key] = train_net(config, opts, logs / f"{key}.log", eval_only)
            atomic_write_json(args.output, report, indent=2)
        return report["runs"][key]

    base = run("base training", BASE, fewshot)
    if "error" in base:
        print(base["error"], file=sys.stderr)
        return 1
    surgery = randinit_surgery(os.path.join(base["output_dir"], "model_final.pth"),
                               f"shapes_train_base{args.split}", f"shapes_train_all{args.split}")
    fine_tune = fewshot + ["MODEL.WEIGHTS", str(surgery)]
    run("base only", BASE_ONLY,
        fine_tune + ["FEWSHOT.SHOT", 1, "OUTPUT_DIR", str(Path(base["output_dir"]) / "base_only")],
        eval_only=True)
    for shot in args.shots:
        for method in args.methods:
            name, config = METHODS[method]
            run(f"{name}, {shot}-shot", config, fine_tune + ["FEWSHOT.SHOT", shot] + args.opts)
    table = {key: r["results"] for key, r in report["runs"].items()
             if "results" in r and key != "base training"}
    try:
        for key, results in table.items():
            check_results_defined(results, f"run {key!r} of {args.output}")
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    print(generalized_table(table))
    return 0 if all("error" not in r for r in report["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
