"""A few-shot sweep from start to end: base models, surgery, every run of the grid on a backend,
progress on one line, and ``summary.json``.

1. Base training once per split that a fine-tuning or base-only method needs (the base config's
   own ``OUTPUT_DIR``, so a base model trained by hand is reused); a failed base training fails
   the runs that need it, with its error.
2. Randinit surgery once per split (``model_reset_surgery.pth`` beside the base model).
3. The grid: finished runs (complete ``results.json``) are skipped, recorded failures too unless
   ``retry_failed``; the rest go to the backend.

Interrupt it at any point and start it again: it continues where it stopped.
"""
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from ...config import load_config
from ...utils.io import atomic_write_json
from ..tfa import randinit_surgery
from .backends import Backend
from .execute import execute_run
from .plan import BASE_CONFIG, Method, Run
from .records import failure_record, finished_record

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


def run_sweep(sweep_dir: str, runs: Sequence[Run], backend: Backend, *,
              base_config: str = str(BASE_CONFIG),
              cache_dir: Optional[str] = None, retry_failed: bool = False,
              keep_checkpoints: bool = False, progress: bool = True,
              redirect_output: bool = True) -> dict:
    """Run ``runs`` (from :func:`~.plan.expand_grid`) and the base models they need; write and
    return the summary: counts, failures (run, error, log), wall time. ``redirect_output``: a
    run's stdout and stderr go to its log (for backends that run each in its own process)."""
    start = time.perf_counter()
    cache_dir = cache_dir or str(Path(sweep_dir) / "cache")
    fn = functools.partial(execute_job, cache_dir=cache_dir, keep_checkpoints=keep_checkpoints,
                           redirect_output=redirect_output)
    needs_base = sorted({r.split for r in runs if r.method.kind in ("finetune", "base_only")})
    base_cfgs = {split: load_config(base_config, ["FEWSHOT.SPLIT", split]) for split in needs_base}
    bases = {split: base_run(base_config, cfg) for split, cfg in base_cfgs.items()}
    base_records = {s: finished_record(r.output_dir) for s, r in bases.items()}
    todo = [Job(r) for s, r in bases.items() if base_records[s] is None]
    if todo:
        bar = Progress(len(todo), 0, 0, "base training", progress)
        done = _execute(todo, backend, fn, bar)
        bar.close()
        for split, run in bases.items():
            base_records[split] = base_records[split] or done.get(run.output_dir)

    weights, base_failures = {}, {}
    for split, run in bases.items():
        record = base_records[split]
        if record and record.get("status") == "finished":
            all_classes = next(load_config(r.method.config, ["FEWSHOT.SPLIT", split,
                                                             "FEWSHOT.SHOT", 1]).DATASETS.TEST[0]
                               for r in runs if r.split == split and r.method.kind != "joint")
            weights[split] = str(randinit_surgery(str(Path(run.output_dir) / "model_final.pth"),
                                                  base_cfgs[split].DATASETS.TRAIN[0],
                                                  all_classes))
        else:
            base_failures[split] = record or {"error": "base training did not finish"}

    finished, failed, jobs = {}, {}, []
    for run in runs:
        if run.method.kind != "joint" and run.split in base_failures:
            base = base_failures[run.split]
            failed[run.output_dir] = {"status": "failed", "run": run.name,
                                      "error": f"base training of split {run.split} failed: "
                                               f"{base.get('error')}", "log": base.get("log")}
            continue
        record = finished_record(run.output_dir)
        if record is not None:
            finished[run.output_dir] = record
            continue
        record = failure_record(run.output_dir)
        if record is not None and not retry_failed:
            failed[run.output_dir] = record
            continue
        jobs.append(Job(run, weights.get(run.split) if run.method.kind != "joint" else None))

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
