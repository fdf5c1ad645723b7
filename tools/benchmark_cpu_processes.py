#!/usr/bin/env python
"""Benchmark: the same training iterations in 1 CPU process vs 2 gloo CPU processes (writes a JSON).

Every run trains ``--iters`` iterations of the same config at the same global batch
(``SOLVER.IMS_PER_BATCH``, split between the processes), without evaluation, and records the
median s/iter from Detectron2's ``metrics.json``, wall time and peak RSS:

* ``1_process``: one process, PyTorch's default thread count;
* ``2_processes``: ``--num-gpus 2`` with ``MODEL.DEVICE cpu``; dynnet_d2 gives each worker
  ``cpus // 2`` threads (``OMP_NUM_THREADS`` unset);
* ``2_processes_omp2``: the same with ``OMP_NUM_THREADS=2`` set by hand (the old Makefile
  default), which oversubscribes 2 cores.

    python tools/benchmark_cpu_processes.py --output benchmarks/cpu_processes_2cpu.json

Resumable: a variant already recorded in the output JSON is skipped (``--rerun`` runs it again).
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

from dynnet_d2.config import load_config
from dynnet_d2.engine.arms import measure_train_net
from dynnet_d2.engine.launcher import available_cpus
from dynnet_d2.utils.io import atomic_write_json

REPO = Path(__file__).resolve().parent.parent
# name -> (processes, OMP_NUM_THREADS or None to leave it unset)
VARIANTS = {"1_process": (1, None), "2_processes": (2, None), "2_processes_omp2": (2, "2")}


def run_variant(name: str, config: str, iters: int, out_root: Path) -> dict:
    processes, omp = VARIANTS[name]
    output_dir = out_root / name
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", config,
           "--num-gpus", processes, "--dist-url", "auto", "OUTPUT_DIR", output_dir,
           "MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", iters, "SOLVER.CHECKPOINT_PERIOD", 10 * iters,
           "DATASETS.TEST", "()"]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    return {"variant": name, "processes": processes, "OMP_NUM_THREADS": omp,
            **measure_train_net(cmd, output_dir, out_root / f"{name}.log", cwd=REPO, env=env)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", default="output/benchmarks/cpu_processes.json")
    parser.add_argument("--rerun", action="store_true", help="run variants already recorded again")
    args = parser.parse_args()
    load_config(args.config)  # a bad config fails here, before any run
    out_root = Path(args.output).with_suffix("")
    report = (json.loads(Path(args.output).read_text()) if Path(args.output).is_file()
              else {"runs": {}})
    report.update(config=args.config, iters=args.iters,
                  machine={"cpus": available_cpus(), "platform": platform.platform()})
    for name in args.variants:
        if name in report["runs"] and "error" not in report["runs"][name] and not args.rerun:
            print(f"{name}: already recorded in {args.output}, skipped")
            continue
        report["runs"][name] = run_variant(name, args.config, args.iters, out_root)
        atomic_write_json(args.output, report, indent=2)
        print(json.dumps(report["runs"][name], indent=2), flush=True)
    runs = report["runs"]
    if all("median_s_per_iter" in runs.get(n, {}) for n in ("1_process", "2_processes")):
        report["ratio_2_processes_to_1"] = round(
            runs["2_processes"]["median_s_per_iter"] / runs["1_process"]["median_s_per_iter"], 3)
        atomic_write_json(args.output, report, indent=2)
    return 0 if all("error" not in r for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
