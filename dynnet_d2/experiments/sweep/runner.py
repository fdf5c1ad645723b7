"""A few-shot sweep from start to end: base models, surgery, every run of the grid on a backend,
progress on one line, and ``summary.json``.

1. One base model per split and base that a fine-tuning or base-only run still to run needs
   (each method names its :class:`~dynnet_d2.engine.fewshot_methods.FewShotBase`, which gives
   the base config and step 2; finished runs need none, so a sweep kept as its runs'
   ``results.json`` alone trains no base), said in the log before anything trains
   (:func:`describe_bases`): for the default base a checkpoint named per split
   (``base_weights``, ``--base-weights``), else the base config's own ``OUTPUT_DIR`` (a base
   model trained there by hand is reused), else a base training of the base config with its own
   schedule (the sweep's ``--max-iter`` and ``--opts`` are for the fine-tuning runs only). A
   failed base training fails the runs that need it, with its error.
2. The base model made into the checkpoint the runs start from, once per split and base (TFA:
   randinit surgery, ``model_reset_surgery.pth`` beside the base model; FSRW: none).
3. The grid: finished runs (complete ``results.json``) are skipped, recorded failures too unless
   ``retry_failed``; the rest go to the backend. A record that cannot be read is a run not
   finished (logged, and run again); a base-only record evaluated with another predictor than
   its config's (base-only used the cosine head before it used the FC head it was trained with)
   is evaluated again.

Interrupt it at any point and start it again: it continues where it stopped.
"""
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import yaml
from tqdm import tqdm

from ...config import load_config
from ...engine.checkpoint import trained_iterations
from ...engine.fewshot_methods import DEFAULT_BASE, fewshot_base
from ...utils.io import atomic_write_json
from .backends import Backend
from .execute import execute_run, run_config
from .plan import Method, Run
from .records import finished_record, read_run

logger = logging.getLogger(__name__)
SUMMARY = "summary.json"


@dataclass(frozen=True)
class Job:
    """A run and the surgery checkpoint it starts from (None: the config's weights)."""

    run: Run
    weights: Optional[str] = None

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def output_dir(self) -> str:
        return self.run.output_dir


def execute_job(job: Job, cache_dir: Optional[str], keep_checkpoints: bool,
                redirect_output: bool) -> dict:
    return execute_run(job.run, job.weights, cache_dir, redirect_output=redirect_output,
                       keep_checkpoints=keep_checkpoints)


class Progress:
    """One tqdm line: runs done / failed / remaining and tqdm's ETA."""

    def __init__(self, total: int, done: int, failed: int, desc: str, enabled: bool):
        self.done, self.failed = done, failed
        self.bar = tqdm(total=total, initial=done + failed, desc=desc, disable=not enabled,
                        dynamic_ncols=True, smoothing=0.1)
        self._postfix()

    def _postfix(self):
        remaining = self.bar.total - self.done - self.failed
        self.bar.set_postfix_str(f"done {self.done}, failed {self.failed}, "
                                 f"remaining {remaining}")

    def update(self, record: dict) -> None:
        if record.get("status") == "finished":
            self.done += 1
        else:
            self.failed += 1
            self.bar.write(f"FAILED {record.get('run')}: {record.get('error')} "
                           f"(log: {record.get('log')})")
        self._postfix()
        self.bar.update(1)

    def close(self):
        self.bar.close()


def _execute(jobs: List[Job], backend: Backend, fn, progress: Progress) -> Dict[str, dict]:
    records = {}
    for job, record in backend.map(fn, jobs):
        records[job.output_dir] = record
        progress.update(record)
    return records


def base_run(base_config: str, base_cfg) -> Run:
    """The base training of ``base_cfg`` (``base_config`` loaded for one split)."""
    return Run(Method("base", "Base training", base_config, "base"), base_cfg.FEWSHOT.SPLIT, 0,
               0, base_cfg.OUTPUT_DIR)


def describe_bases(base_cfgs: Mapping[Tuple[str, int], Tuple[str, object]],
                   base_weights: Mapping[int, str]) -> List[str]:
    """One line per (base, split): which base model the runs start from, and how long it was
    (or will be) trained. ``base_cfgs``: (base name, split) -> (config path, loaded config)."""
    lines = []
    for (name, split), (base_config, cfg) in base_cfgs.items():
        what = f"Split {split}" + ("" if name == DEFAULT_BASE else f" ({name})")
        if name == DEFAULT_BASE and split in base_weights:
            lines.append(f"{what}: base model {base_weights[split]} (--base-weights; "
                         f"trained {trained_iterations(base_weights[split])})")
            continue
        final = Path(cfg.OUTPUT_DIR) / "model_final.pth"
        if final.is_file():
            lines.append(f"{what}: reusing the base model {final} (trained "
                         f"{trained_iterations(str(final))})")
        else:
            lines.append(
                f"{what}: training the base model of {base_config} in {cfg.OUTPUT_DIR}: "
                f"{cfg.SOLVER.MAX_ITER} iterations (the base config's schedule, resumed from its "
                f"last checkpoint if any; --max-iter and --opts apply to the fine-tuning runs "
                f"only; --base-weights {split}=PATH starts from a trained base model instead)")
    return lines


def _evaluated_with_another_predictor(run: Run) -> Optional[str]:
    """Why a finished base-only record is stale: its ``config.yaml`` has another
    ``MODEL.ROI_HEADS.OUTPUT_LAYER`` than the method's config now has."""
    saved = Path(run.output_dir) / "config.yaml"
    if run.method.kind != "base_only" or not saved.is_file():
        return None
    used = (yaml.safe_load(saved.read_text()) or {}).get("MODEL", {}).get(
        "ROI_HEADS", {}).get("OUTPUT_LAYER")
    planned = run_config(run, None, None).MODEL.ROI_HEADS.OUTPUT_LAYER
    if used == planned:
        return None
    return f"it was evaluated with the {used} head, its config has {planned}"


def run_sweep(sweep_dir: str, runs: Sequence[Run], backend: Backend, *,
              base_config: Optional[str] = None,
              base_weights: Optional[Mapping[int, str]] = None,
              cache_dir: Optional[str] = None, retry_failed: bool = False,
              keep_checkpoints: bool = False, progress: bool = True,
              redirect_output: bool = True) -> dict:
    """Run ``runs`` (from :func:`~.plan.expand_grid`) and the base models they need; write and
    return the summary: counts, failures (run, error, log), wall time. Each method's runs start
    from the base its ``FewShotMethod.base`` names, one per split. ``base_config``: the default
    base's training config (default: the declared one). ``base_weights``: split -> a trained
    default base model's checkpoint (no base training for that split).
    ``redirect_output``: a run's stdout and stderr go to its log (for backends that run each in
    its own process)."""
    start = time.perf_counter()
    base_weights = dict(base_weights or {})
    cache_dir = cache_dir or str(Path(sweep_dir) / "cache")
    fn = functools.partial(execute_job, cache_dir=cache_dir, keep_checkpoints=keep_checkpoints,
                           redirect_output=redirect_output)
    finished, failed, pending = {}, {}, []
    for run in runs:
        state = read_run(run.output_dir)
        for problem in state.unreadable:
            logger.warning(f"{problem}: run {run.name} counts as not finished")
        stale = _evaluated_with_another_predictor(run) if state.finished else None
        if stale:
            logger.warning(f"Evaluating {run.name} again: {stale}")
        elif state.finished is not None:
            finished[run.output_dir] = state.finished
            continue
        if state.failed is not None and not retry_failed:
            failed[run.output_dir] = state.failed
            continue
        pending.append(run)

    # (base name, split) of every run still to run that starts from a base model: the runs that
    # finished need none (a sweep whose records were kept without its base models trains none)
    needs_base = sorted({(r.method.base, r.split) for r in pending
                         if r.method.kind in ("finetune", "base_only")})
    base_cfgs = {}
    for name, split in needs_base:
        config = (base_config if name == DEFAULT_BASE and base_config
                  else fewshot_base(name).config)
        base_cfgs[name, split] = (config, load_config(config, ["FEWSHOT.SPLIT", split]))
    for line in describe_bases(base_cfgs, base_weights):
        logger.info(line)
    bases = {key: base_run(config, cfg) for key, (config, cfg) in base_cfgs.items()
             if not (key[0] == DEFAULT_BASE and key[1] in base_weights)}
    base_records = {key: finished_record(r.output_dir) for key, r in bases.items()}
    todo = [Job(r) for key, r in bases.items() if base_records[key] is None]
    if todo:
        bar = Progress(len(todo), 0, 0, "base training", progress)
        done = _execute(todo, backend, fn, bar)
        bar.close()
        for key, run in bases.items():
            base_records[key] = base_records[key] or done.get(run.output_dir)

    checkpoints = {(DEFAULT_BASE, split): path for split, path in base_weights.items()
                   if (DEFAULT_BASE, split) in base_cfgs}
    base_failures = {}
    for key, run in bases.items():
        record = base_records[key]
        if record and record.get("status") == "finished":
            checkpoints[key] = str(Path(run.output_dir) / "model_final.pth")
        else:
            base_failures[key] = record or {"error": "base training did not finish"}
    weights = {}
    for (name, split), checkpoint in checkpoints.items():
        all_classes = next(run_config(r, None, None).DATASETS.TEST[0] for r in pending
                           if (r.method.base, r.split) == (name, split)
                           and r.method.kind != "joint")
        weights[name, split] = str(fewshot_base(name).prepare(
            checkpoint, base_cfgs[name, split][1].DATASETS.TRAIN[0], all_classes))

    jobs = []
    for run in pending:
        key = (run.method.base, run.split)
        if run.method.kind != "joint" and key in base_failures:
            base = base_failures[key]
            failed[run.output_dir] = {"status": "failed", "run": run.name,
                                      "error": f"base training of split {run.split} failed: "
                                               f"{base.get('error')}", "log": base.get("log")}
            continue
        jobs.append(Job(run, weights.get(key) if run.method.kind != "joint" else None))

    logger.info(f"Sweep {sweep_dir}: {len(runs)} runs, {len(finished)} finished, {len(failed)} "
                f"failed before, {len(jobs)} to run on {backend.describe()}")
    bar = Progress(len(runs), len(finished), len(failed), "runs", progress)
    for output_dir, record in _execute(jobs, backend, fn, bar).items():
        (finished if record.get("status") == "finished" else failed)[output_dir] = record
    bar.close()

    summary = {
        "sweep_dir": str(sweep_dir), "backend": backend.describe(), "runs": len(runs),
        "finished": len(finished), "failed": len(failed), "ran_now": len(jobs),
        "wall_s": round(time.perf_counter() - start, 2),
        "failures": [{"run": r.get("run"), "error": r.get("error"), "log": r.get("log")}
                     for r in failed.values()],
    }
    atomic_write_json(Path(sweep_dir) / SUMMARY, summary, indent=2)
    return summary
