"""One run of a sweep, inside a worker (a local process or a cluster job): config, training
(with the trainer the methods' choosers pick, :func:`dynnet_d2.engine.trainer_class`, e.g. TFA's
cached last-layer fine-tuning) and evaluation, with everything recorded in the run's folder.

* ``results.json``: the record of a finished run, written atomically last: ``status``
  ("finished"), ``results`` (``{task: {metric: value}}`` of the first test set, as
  ``inference/results.json``), ``wall_s``, ``cached``, ``median_s_per_iter`` and the run's grid
  coordinates. When it counts as finished: :mod:`.records`. An evaluation without a single
  defined metric is a failure, not a record.
* ``failed.json``: the error, its traceback and the log of a run that raised.
* ``log.txt``: every log record once (and, in worker processes, everything the run printed);
  it starts with the run's schedule (:func:`describe_schedule`).
* ``config.yaml``, ``metrics.json``, ``model_final.pth``: as ``tools/train_net.py``.

A run is reproducible: unless its config or ``--opts`` set ``SEED`` >= 0, its ``SEED`` is the
run's K-shot seed (0 for a base training), and every random number generator is seeded with it
before the model is built (``tools/train_net.py`` keeps Detectron2's ``SEED -1``: a new random
seed per call). Running a run again gives the same weights and results on the same machine and
thread count.

:func:`execute_run` never raises (a folder it cannot write included): the sweep goes on
whatever one run does.
"""
import contextlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from detectron2.utils.env import seed_all_rng

from ...config import describe_schedule as describe_config_schedule
from ...config import load_config, schedule_per_shot
from ...engine.results import json_safe, results_per_dataset
from ...engine.trainer import DynnetTrainer, train_or_reuse, trainer_class
from ...evaluation.fewshot import check_results_defined
from ...utils.io import atomic_open, atomic_write_json
from ...utils.measure import median_s_per_iter
from .plan import Run
from .records import FAILURE, LOG, RECORD

logger = logging.getLogger(__name__)


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
    checkpoint (fine-tuning and base-only), the sweep's overrides, its schedule, and its
    ``SEED`` (the run's seed where the config and overrides leave Detectron2's -1)."""
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
    if cfg.SEED < 0:
        cfg.SEED = run.seed
    return cfg


def describe_schedule(run: Run, cfg) -> str:
    """How many iterations ``run`` trains under its resolved ``cfg``, and where that number
    comes from (``--max-iter``: the total; a per-shot config: per shot x K, so a
    ``SOLVER.MAX_ITER`` in ``--opts`` is per shot too; else the config's)."""
    if run.method.kind == "base_only":
        return "evaluation only (no training)"
    if run.max_iter:
        return (f"{cfg.SOLVER.MAX_ITER} iterations in total (--max-iter {run.shot}="
                f"{run.max_iter}; SOLVER.STEPS {tuple(cfg.SOLVER.STEPS)} at the config's "
                f"fractions)")
    per_shot = run.method.kind != "base" and schedule_per_shot(run.method.config, run.opts)
    return (describe_config_schedule(cfg, per_shot)
            + ("; --max-iter K=N sets the total" if per_shot else
               f" (of {Path(run.method.config).name})"))


def _console_handlers(loggers: Sequence[logging.Logger]
                      ) -> List[Tuple[logging.Logger, logging.Handler]]:
    streams = {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}
    return [(lg, h) for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            and h.stream in streams]


@contextlib.contextmanager
def run_logging(log_path: Path, redirect_output: bool) -> Iterator[None]:
    """Every log record goes to ``log_path`` once while the run lasts. With
    ``redirect_output``, everything written to stdout and stderr (C libraries included) goes
    there too, so the loggers' console handlers (Detectron2's, or the one ``lvis`` installs on
    the root logger when imported) are detached meanwhile: each would write every record a
    second time, in its own format."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    # The root and the loggers that do not pass their records on to it (Detectron2's
    # setup_logger makes its loggers so).
    loggers = [root] + [lg for lg in root.manager.loggerDict.values()
                        if isinstance(lg, logging.Logger) and not lg.propagate and lg.handlers]
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s]: %(message)s",
                                           datefmt="%m/%d %H:%M:%S"))
    detached = _console_handlers(loggers) if redirect_output else []
    level = root.level
    root.setLevel(logging.INFO)
    for lg, console in detached:
        lg.removeHandler(console)
    for lg in loggers:
        lg.addHandler(handler)
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
        for lg in loggers:
            lg.removeHandler(handler)
        for lg, console in detached:
            lg.addHandler(console)
        handler.close()
        root.setLevel(level)


def _evaluate_only(cfg):
    """Base-only: the weights evaluated as they are, by the config's trainer (e.g. from TFA's
    test caches); whether a method's own trainer did it."""
    chosen = trainer_class(cfg)
    return chosen.evaluate_checkpoint(cfg), chosen is not DynnetTrainer


def _train(run: Run, cfg):
    if run.method.kind == "base":
        return train_or_reuse(cfg), False
    chosen = trainer_class(cfg)
    trainer = chosen(cfg)
    trainer.resume_or_load(resume=True)
    results = trainer.train()
    if results is None:
        raise RuntimeError("training ended without an evaluation (empty DATASETS.TEST or "
                           "TEST.EVAL_PERIOD not reached)")
    return results, chosen is not DynnetTrainer


def _remove_intermediate_checkpoints(output_dir: Path) -> None:
    for path in output_dir.glob("model_0*.pth"):
        path.unlink()


def execute_run(run: Run, weights: Optional[str] = None, cache_dir: Optional[str] = None,
                redirect_output: bool = True, keep_checkpoints: bool = False) -> dict:
    """Train and evaluate ``run`` (evaluate only for base-only) and record it; returns the
    record (status "finished" or "failed"), never raises: a failure whose ``failed.json`` cannot
    be written either (an unwritable folder) is returned only."""
    start = time.perf_counter()
    output = Path(run.output_dir)
    coordinates = {"run": run.name, "method": run.method.name, "label": run.method.label,
                   "split": run.split, "shot": run.shot, "seed": run.seed,
                   "output_dir": run.output_dir}

    def failure(e: Exception) -> dict:
        return {"status": "failed", **coordinates, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(), "log": str(output / LOG),
                "wall_s": round(time.perf_counter() - start, 2)}

    try:
        with run_logging(output / LOG, redirect_output):
            try:
                return _run_and_record(run, weights, cache_dir, keep_checkpoints, coordinates,
                                       start)
            except Exception as e:  # noqa: BLE001 - recorded; the sweep goes on
                logger.exception(f"Run {run.name} failed")
                record = failure(e)
                atomic_write_json(output / FAILURE, record, indent=2)
                return record
    except Exception as e:  # noqa: BLE001 - the run's folder, log or record cannot be written
        return failure(e)


def _run_and_record(run: Run, weights: Optional[str], cache_dir: Optional[str],
                    keep_checkpoints: bool, coordinates: dict, start: float) -> dict:
    output = Path(run.output_dir)
    cfg = run_config(run, weights, cache_dir)
    cfg.freeze()
    logger.info(f"Run {run.name}: {describe_schedule(run, cfg)}; SEED {cfg.SEED}")
    seed_all_rng(cfg.SEED)
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
    check_results_defined(primary, f"run {run.name} on {cfg.DATASETS.TEST[0]}")
    record = {"status": "finished", **coordinates, "results": json_safe(primary),
              "cached": cached, "median_s_per_iter": median_s_per_iter(output),
              "wall_s": round(time.perf_counter() - start, 2)}
    atomic_write_json(output / RECORD, record, indent=2)
    (output / FAILURE).unlink(missing_ok=True)
    return record
