"""``tools/run_experiments.py``: arguments, the checks made before any run starts (configs,
datasets, base checkpoints, a writable sweep folder), the schedules, the sweep."""
import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog

from ...config import load_config
from ...engine.fewshot_methods import fewshot_base
from ...utils.io import ensure_writable_dir
from ...utils.logger import setup_logger
from .backends import Backend, LocalBackend, SubmititBackend
from .execute import describe_schedule, run_config
from .plan import Run, expand_grid, method_from_arg
from .runner import run_sweep

# What a Ctrl-C prints (the exit code is 130, as a shell's for SIGINT).
INTERRUPTED = "interrupted; run the same command again to resume"


@dataclass
class SweepPlan:
    sweep_dir: str
    runs: List[Run]
    backend: Backend
    base_config: str
    base_weights: Dict[int, str]
    schedules: List[str]  # one line per (method, shot): iterations per run and their origin
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


def parse_base_weights(values: Sequence[str], splits: Sequence[int]) -> Dict[int, str]:
    """``SPLIT=CHECKPOINT`` pairs, each split among ``splits`` and each checkpoint a file."""
    out = {}
    for value in values:
        split, _, path = value.partition("=")
        if not (split.isdigit() and path):
            raise ValueError(f"--base-weights {value!r}: expected SPLIT=CHECKPOINT, e.g. "
                             f"1=output/demo/base_split1/model_final.pth")
        if int(split) not in splits:
            raise ValueError(f"--base-weights {value!r}: split {split} is not among --splits "
                             f"{' '.join(map(str, splits))}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"--base-weights {value!r}: {path!r} does not exist (or is "
                                    f"not a file)")
        out[int(split)] = path
    return out


def check_base_weights(base_weights: Dict[int, str], base_config: str) -> None:
    """Each named checkpoint is a trained base model of its split's base training set, and what
    is made of it can be written (the declared base's check, e.g. TFA's: its box predictor
    scores the base classes, so it is not a surgery output or a fine-tuned model)."""
    check = fewshot_base().check_checkpoint
    for split, path in base_weights.items():
        base_set = load_config(base_config, ["FEWSHOT.SPLIT", split]).DATASETS.TRAIN[0]
        check(path, base_set, f"--base-weights {split}={path}", f"split {split}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweep-dir", required=True, help="folder of the sweep's runs")
    parser.add_argument("--splits", type=int, nargs="+", default=[1])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    parser.add_argument("--seeds", nargs="+", default=["0-9"], help="e.g. 0-19, or 0 3 7")
    parser.add_argument("--methods", nargs="+", default=["cos", "fc", "base_only"])
    parser.add_argument("--max-iter", nargs="+", default=[], metavar="SHOT=ITERS",
                        help="total iterations of a shot's fine-tuning runs (not the base "
                             "training), e.g. 1=400 10=4000")
    parser.add_argument("--base-config", default=None,
                        help="config of the base training (with its own schedule and OUTPUT_DIR; "
                             "default: the one the few-shot methods declare)")
    parser.add_argument("--base-weights", nargs="+", default=[], metavar="SPLIT=CHECKPOINT",
                        help="a trained base model per split (no base training), e.g. "
                             "1=output/demo/base_split1/model_final.pth")
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
                        help="KEY VALUE ... for every fine-tuning run, not the base training "
                             "(last argument; SOLVER.MAX_ITER of a per-shot config is per shot)")


def _backend(args) -> Backend:
    if args.backend == "local":
        return LocalBackend(args.workers, args.threads)
    parameters = {"timeout_min": args.timeout_min, "gpus_per_node": args.gpus_per_node,
                  "cpus_per_task": args.cpus_per_task}
    if args.slurm_partition:
        parameters["slurm_partition"] = args.slurm_partition
    return SubmititBackend(str(Path(args.sweep_dir) / "jobs"), args.cluster, parameters)


def check_runs(runs: Sequence[Run]) -> List[str]:
    """Every run's config loads with its overrides and names registered datasets; returns the
    schedule of each (method, shot), one line each."""
    registered = set(DatasetCatalog.list())
    schedules = {}
    for run in runs:
        try:
            cfg = run_config(run, None, None)
        except AssertionError as e:  # yacs' way of rejecting an unknown key
            raise ValueError(f"run {run.name}: {e} (in --opts or {run.method.config})") from None
        for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
            if name not in registered:
                raise KeyError(f"run {run.name}: dataset {name!r} is not registered (is seed "
                               f"{run.seed} / shot {run.shot} / split {run.split} available?)")
        if (run.method.name, run.shot) not in schedules:  # the same for every seed
            shots = "" if run.method.kind == "base_only" else f", {run.shot} shot(s)"
            schedules[(run.method.name, run.shot)] = (f"Schedule of {run.method.name}{shots}: "
                                                      f"{describe_schedule(run, cfg)}")
    return list(schedules.values())


def parse_and_check(parser: argparse.ArgumentParser, argv: Sequence[str]) -> SweepPlan:
    """The sweep of ``argv``, checked; bad arguments raise ``ValueError``, ``KeyError``,
    ``FileNotFoundError`` or ``PermissionError`` (an unwritable ``--sweep-dir``) naming them."""
    add_arguments(parser)
    args = parser.parse_args(argv)
    methods = [method_from_arg(m) for m in args.methods]
    opts = list(args.opts) + (["FEWSHOT.CACHE.ENABLED", False] if args.no_cache else [])
    base_weights = parse_base_weights(args.base_weights, args.splits)
    runs = [Run(r.method, r.split, r.shot, r.seed, r.output_dir, tuple(opts), r.max_iter)
            for r in expand_grid(args.sweep_dir, methods, args.splits, args.shots,
                                 parse_seeds(args.seeds), parse_max_iter(args.max_iter))]
    schedules = check_runs(runs)
    args.base_config = args.base_config or fewshot_base().config
    check_base_weights(base_weights, args.base_config)
    ensure_writable_dir(args.sweep_dir, "--sweep-dir")
    return SweepPlan(args.sweep_dir, runs, _backend(args), args.base_config, base_weights,
                     schedules, args.retry_failed, args.keep_checkpoints)


def run_from_args(plan: SweepPlan) -> int:
    """Run the sweep; the exit code: 0, or 1 when a run failed."""
    setup_logger()
    logger = logging.getLogger("dynnet_d2")
    logger.info(f"{len(plan.runs)} runs in {plan.sweep_dir}")
    for line in plan.schedules:
        logger.info(line)
    summary = run_sweep(plan.sweep_dir, plan.runs, plan.backend, base_config=plan.base_config,
                        base_weights=plan.base_weights, retry_failed=plan.retry_failed,
                        keep_checkpoints=plan.keep_checkpoints)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    for failure in summary["failures"]:
        print(f"FAILED {failure['run']}: {failure['error']} (log: {failure['log']})")
    return 1 if summary["failed"] else 0
