#!/usr/bin/env python
"""Benchmark: cached vs uncached last-layer fine-tuning on the same runs, as a JSON.

The same TFA runs (methods x shots, one seed) three ways, one process at a time (--threads
each): cached with empty caches (the run builds what it needs), cached with the caches built,
and uncached (the full frozen model, Detectron2's loader). Plus the uncached runs again with
another SEED (``--opts SEED 1``): the spread of the live path itself, against which the
cached/uncached metric differences are read.

    python tools/benchmark_sweep_cache.py --output benchmarks/tfa_cache_split1_2cpu.json \\
        [--split 1] [--seed 0] [--shots 1 5 10] [--methods cos fc]

Resumable: the sweeps under --work-dir skip finished runs.
"""
import argparse
import os
import platform
import sys
from pathlib import Path

from dynnet_d2.experiments.sweep import (
    LocalBackend,
    Run,
    expand_grid,
    finished_record,
    method_from_arg,
)
from dynnet_d2.experiments.sweep.runner import run_sweep
from dynnet_d2.utils.io import atomic_write_json

METRICS = ("AP", "AP50", "bAP", "bAP50", "nAP", "nAP50")
VARIANTS = {  # name -> (per-run cache folder or None, extra overrides)
    "cached_cold": ("cache", ()),  # a run's own empty cache folder: it builds everything
    "cached_warm": ("cache", ()),  # the same folders, now filled
    "uncached": (None, ("FEWSHOT.CACHE.ENABLED", False)),
    "uncached_seed1": (None, ("FEWSHOT.CACHE.ENABLED", False, "SEED", 1)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="output/benchmarks/tfa_cache.json")
    parser.add_argument("--work-dir", default="output/benchmarks/tfa_cache")
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--methods", nargs="+", default=["cos", "fc"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    methods = [method_from_arg(m) for m in args.methods]
    backend = LocalBackend(workers=1, threads=args.threads)
    work = Path(args.work_dir)
    records = {}
    for variant, (cache, opts) in VARIANTS.items():
        runs = []
        for r in expand_grid(str(work / variant), methods, [args.split], args.shots,
                             [args.seed]):
            cache_opts = ("FEWSHOT.CACHE.DIR", str(work / cache / r.name)) if cache else ()
            runs.append(Run(r.method, r.split, r.shot, r.seed, r.output_dir, opts + cache_opts))
        summary = run_sweep(str(work / variant), runs, backend)
        print(f"[benchmark_sweep_cache] {variant}: {summary['finished']} finished, "
              f"{summary['failed']} failed", flush=True)
        records[variant] = {r.name: finished_record(r.output_dir) for r in runs}

    comparison = []
    for name, uncached in records["uncached"].items():
        row = {"run": name}
        for variant in VARIANTS:
            record = records[variant].get(name)
            row[variant] = None if record is None else {
                "wall_s": record["wall_s"], "cached": record["cached"],
                **{m: round(record["results"]["bbox"][m], 3) for m in METRICS}}
        if uncached and row["cached_cold"] and row["cached_warm"]:
            for variant in ("cached_cold", "cached_warm"):
                row[f"speedup_{variant}"] = round(uncached["wall_s"] / row[variant]["wall_s"], 1)
            row["cached_minus_uncached"] = {m: round(row["cached_warm"][m] - row["uncached"][m], 3)
                                            for m in METRICS}
        if uncached and row["uncached_seed1"]:
            row["uncached_seed1_minus_seed0"] = {
                m: round(row["uncached_seed1"][m] - row["uncached"][m], 3) for m in METRICS}
        comparison.append(row)
    atomic_write_json(args.output, {
        "split": args.split, "seed": args.seed, "backend": backend.describe(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": comparison}, indent=2)
    for row in comparison:
        print(row["run"], {k: v for k, v in row.items() if k.startswith(("speedup", "cached_m",
                                                                          "uncached_seed1_m"))})
    return 0 if all(row.get("cached_minus_uncached") for row in comparison) else 1


if __name__ == "__main__":
    sys.exit(main())
