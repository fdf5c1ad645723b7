"""One run of a sweep, inside a worker (a local process or a cluster job): config, training
(cached last-layer fine-tuning where it applies, :mod:`dynnet_d2.engine.last_layer`) and
evaluation, with everything recorded in the run's folder.

* ``results.json``: the record of a finished run, written atomically last: ``status``
  ("finished"), ``results`` (``{task: {metric: value}}`` of the first test set, as
  ``inference/results.json``), ``wall_s``, ``cached``, ``median_s_per_iter`` and the run's grid
  coordinates. When it counts as finished: :mod:`.records`.
* ``failed.json``: the error, its traceback and the log of a run that raised.
* ``log.txt``, ``config.yaml``, ``metrics.json``, ``model_final.pth``: as ``tools/train_net.py``.

:func:`execute_run` never raises: the sweep goes on whatever one run does.
"""
import contextlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Iterator, Optional

from ...config import load_config
from ...utils.io import atomic_open, atomic_write_json
from ...utils.measure import median_s_per_iter
from ..checkpoint import DynnetCheckpointer
from ..last_layer import CachedLastLayerTrainer, build_trainer, evaluate_cached, why_not_cacheable
from ..results import json_safe, results_per_dataset
from ..tfa import train_or_reuse
from ..trainer import DynnetTrainer
from .plan import Run
from .records import FAILURE, LOG, RECORD


def set_schedule(cfg, max_iter: int) -> None:
    """``SOLVER.MAX_ITER`` = ``max_iter`` with ``SOLVER.STEPS`` at the same fractions of the
    schedule and one checkpoint at the end (after :func:`load_config` resolved the per-shot
    schedule)."""
    old = cfg.SOLVER.MAX_ITER
    cfg.SOLVER.STEPS = tuple(round(step * max_iter / old) for step in cfg.SOLVER.STEPS)
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.CHECKPOINT_PERIOD = max_iter


def run_config(run: Run, weights: Optional[str], cache_dir: Optional[str]):
    """The run's config: its method's file, the grid coordinates, the split's surgery
    checkpoint (fine-tuning and base-only), the sweep's overrides, its schedule."""
    opts = ["FEWSHOT.SPLIT", run.split, "FEWSHOT.SHOT", run.shot, "FEWSHOT.SEED", run.seed,
            "OUTPUT_DIR", run.output_dir]
    if run.method.kind == "base":
        opts = ["FEWSHOT.SPLIT", run.split]
    if weights:
        opts += ["MODEL.WEIGHTS", weights]
    if cache_dir:
        opts += ["FEWSHOT.CACHE.DIR", cache_dir]
    cfg = load_config(run.method.config, opts + list(run.opts))
    if run.max_iter:
        set_schedule(cfg, run.max_iter)
    return cfg


@contextlib.contextmanager
def run_logging(log_path: Path, redirect_output: bool) -> Iterator[None]:
    """Every log record (and, with ``redirect_output``, everything written to stdout and
    stderr, C libraries included) goes to ``log_path`` while the run lasts."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s]: %(message)s",
                                           datefmt="%m/%d %H:%M:%S"))
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    saved = []
    if redirect_output:
        sys.stdout.flush()
        sys.stderr.flush()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
        saved = [(fd, os.dup(fd)) for fd in (1, 2)]
        for fd, _ in saved:
            os.dup2(log_fd, fd)
        os.close(log_fd)
    try:
        yield
    finally:
        if redirect_output:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


def _evaluate_only(cfg):
    """Base-only: the weights evaluated as they are (from the test cache when it applies)."""
    if why_not_cacheable(cfg) is not None:
        return DynnetTrainer.evaluate_checkpoint(cfg), False
    model = DynnetTrainer.build_model(cfg)
    DynnetCheckpointer(model, strict=True).load(cfg.MODEL.WEIGHTS)
    return evaluate_cached(cfg, model), True


def _train(run: Run, cfg):
    if run.method.kind == "base":
        return train_or_reuse(cfg), False
    trainer = build_trainer(cfg)
    trainer.resume_or_load(resume=True)
    results = trainer.train()
    if results is None:
        raise RuntimeError("training ended without an evaluation (empty DATASETS.TEST or "
                           "TEST.EVAL_PERIOD not reached)")
    return results, isinstance(trainer, CachedLastLayerTrainer)


def _remove_intermediate_checkpoints(output_dir: Path) -> None:
    for path in output_dir.glob("model_0*.pth"):
        path.unlink()


def execute_run(run: Run, weights: Optional[str] = None, cache_dir: Optional[str] = None,
                redirect_output: bool = True, keep_checkpoints: bool = False) -> dict:
    """Train and evaluate ``run`` (evaluate only for base-only) and record it; returns the
    record (status "finished" or "failed"), never raises."""
    start = time.perf_counter()
    output = Path(run.output_dir)
    coordinates = {"run": run.name, "method": run.method.name, "label": run.method.label,
                   "split": run.split, "shot": run.shot, "seed": run.seed,
                   "output_dir": run.output_dir}
    with run_logging(output / LOG, redirect_output):
        try:
            cfg = run_config(run, weights, cache_dir)
            cfg.freeze()
            output.mkdir(parents=True, exist_ok=True)
            with atomic_open(output / "config.yaml") as f:
                f.write(cfg.dump())
            if run.method.kind == "base_only":
                results, cached = _evaluate_only(cfg)
            else:
                results, cached = _train(run, cfg)
            if not keep_checkpoints:
                _remove_intermediate_checkpoints(output)
            primary = results_per_dataset(results, cfg.DATASETS.TEST)[cfg.DATASETS.TEST[0]]
            record = {"status": "finished", **coordinates, "results": json_safe(primary),
                      "cached": cached, "median_s_per_iter": median_s_per_iter(output),
                      "wall_s": round(time.perf_counter() - start, 2)}
            atomic_write_json(output / RECORD, record, indent=2)
            (output / FAILURE).unlink(missing_ok=True)
        except Exception as e:  # noqa: BLE001 - recorded; the sweep goes on
            logging.getLogger(__name__).exception(f"Run {run.name} failed")
            record = {"status": "failed", **coordinates, "error": f"{type(e).__name__}: {e}",
                      "traceback": traceback.format_exc(), "log": str(output / LOG),
                      "wall_s": round(time.perf_counter() - start, 2)}
            atomic_write_json(output / FAILURE, record, indent=2)
    return record
