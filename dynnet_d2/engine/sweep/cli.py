"""``tools/run_experiments.py``: arguments, the checks made before any run starts, the sweep."""
import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog

from ...utils.logger import setup_logger
from .backends import Backend, LocalBackend, SubmititBackend
from .execute import run_config
from .plan import BASE_CONFIG, Run, expand_grid, method_from_arg
from .runner import run_sweep


@dataclass
class SweepPlan:
    sweep_dir: str
    runs: List[Run]
    backend: Backend
    base_config: str
    retry_failed: bool
    keep_checkpoints: bool


def parse_seeds(values: Sequence[str]) -> List[int]:
    """``0-19`` (inclusive range) and/or single seeds."""
    seeds = []
    for value in values:
        first, dash, last = value.partition("-")
        try:
            seeds += list(range(int(first), int(last) + 1)) if dash else [int(value)]
        except ValueError:
            raise ValueError(f"--seeds {value!r}: expected a seed (3) or a range (0-19)") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds {' '.join(values)}: expected seeds >= 0")
    return sorted(set(seeds))


def parse_max_iter(values: Sequence[str]) -> Dict[int, int]:
    """``SHOT=ITERATIONS`` pairs."""
    out = {}
    for value in values:
        shot, _, iters = value.partition("=")
        if not (shot.isdigit() and iters.isdigit() and int(iters) > 0):
            raise ValueError(f"--max-iter {value!r}: expected SHOT=ITERATIONS, e.g. 5=500")
        out[int(shot)] = int(iters)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweep-dir", required=True, help="folder of the sweep's runs")
    parser.add_argument("--splits", type=int, nargs="+", default=[1])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    parser.add_argument("--seeds", nargs="+", default=["0-9"], help="e.g. 0-19, or 0 3 7")
    parser.add_argument("--methods", nargs="+", default=["cos", "fc", "base_only"])
    parser.add_argument("--max-iter", nargs="+", default=[], metavar="SHOT=ITERS")
    parser.add_argument("--base-config", default=str(BASE_CONFIG))
    parser.add_argument("--no-cache", action="store_true",
                        help="fine-tune the full model even where only the predictor trains")
    parser.add_argument("--retry-failed", action="store_true")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep intermediate checkpoints (model_final.pth is always kept)")
    parser.add_argument("--backend", choices=["local", "submitit"], default="local")
    parser.add_argument("--workers", type=int, default=1, help="local backend: processes")
    parser.add_argument("--threads", type=int, default=None,
                        help="local backend: threads per process (default: cpus // workers)")
    parser.add_argument("--cluster", default=None, help="submitit: slurm, local (default: auto)")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--timeout-min", type=int, default=120)
    parser.add_argument("--gpus-per-node", type=int, default=0)
    parser.add_argument("--cpus-per-task", type=int, default=4)
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE ... for every fine-tuning run (last argument)")


def _backend(args) -> Backend:
    if args.backend == "local":
        return LocalBackend(args.workers, args.threads)
    parameters = {"timeout_min": args.timeout_min, "gpus_per_node": args.gpus_per_node,
                  "cpus_per_task": args.cpus_per_task}
    if args.slurm_partition:
        parameters["slurm_partition"] = args.slurm_partition
    return SubmititBackend(str(Path(args.sweep_dir) / "jobs"), args.cluster, parameters)


def check_runs(runs: Sequence[Run]) -> None:
    """Every run's config loads with its overrides and names registered datasets."""
    registered = set(DatasetCatalog.list())
    for run in runs:
        try:
            cfg = run_config(run, None, None)
        except AssertionError as e:  # yacs' way of rejecting an unknown key
            raise ValueError(f"run {run.name}: {e} (in --opts or {run.method.config})") from None
        for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
            if name not in registered:
                raise KeyError(f"run {run.name}: dataset {name!r} is not registered (is seed "
                               f"{run.seed} / shot {run.shot} / split {run.split} available?)")


def parse_and_check(parser: argparse.ArgumentParser, argv: Sequence[str]) -> SweepPlan:
    add_arguments(parser)
    args = parser.parse_args(argv)
    methods = [method_from_arg(m) for m in args.methods]
    opts = list(args.opts) + (["FEWSHOT.CACHE.ENABLED", False] if args.no_cache else [])
    runs = [Run(r.method, r.split, r.shot, r.seed, r.output_dir, tuple(opts), r.max_iter)
            for r in expand_grid(args.sweep_dir, methods, args.splits, args.shots,
                                 parse_seeds(args.seeds), parse_max_iter(args.max_iter))]
    check_runs(runs)
    return SweepPlan(args.sweep_dir, runs, _backend(args), args.base_config,
                     args.retry_failed, args.keep_checkpoints)


def run_from_args(plan: SweepPlan) -> int:
    setup_logger()
    logging.getLogger("dynnet_d2").info(f"{len(plan.runs)} runs in {plan.sweep_dir}")
    summary = run_sweep(plan.sweep_dir, plan.runs, plan.backend, base_config=plan.base_config,
                        retry_failed=plan.retry_failed,
                        keep_checkpoints=plan.keep_checkpoints)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    for failure in summary["failures"]:
        print(f"FAILED {failure['run']}: {failure['error']} (log: {failure['log']})")
    return 1 if summary["failed"] else 0
