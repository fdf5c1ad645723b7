"""The benchmark arm runner: an *arm* is a named training run of ``tools/train_net.py`` — a
config, options on top, optionally the arm it starts from (its ``model_final.pth`` becomes
``MODEL.WEIGHTS``) and options computed from that arm's finished run (e.g. a rate measured on its
model). :func:`train_arms` trains a table of arms into ``<work_dir>/<arm>``:

* an arm whose ``inference/results.json`` exists is finished and not trained again (so runs made
  by an earlier version of a benchmark are found by their folder);
* an interrupted arm resumes (``--resume`` when its folder holds ``last_checkpoint``);
* a failure is recorded and the others go on; the arms that start from a failed one are recorded
  as not run;
* several arms may train at once, each process with its own number of intra-op threads;
* the benchmark record (``record["runs"][<arm>]``) is rewritten atomically after every arm.

Every evaluation of a trained arm builds its model from the run's own ``config.yaml`` and loads
its weights strictly: :func:`dynnet_d2.engine.runs.load_trained_model`.

This module sits in the engine layer, not in :mod:`dynnet_d2.experiments`, so that the methods'
own benchmark modules (``dynnet_d2/methods/<method>/benchmark.py``, thin
``tools/benchmark_<method>.py`` command lines over them) may use it: a method may import the
engine, never the experiments layer above it.
"""
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import torch

from ..utils.io import atomic_write_json
from ..utils.measure import median_s_per_iter, run_measured
from .results import results_file

PathLike = Union[str, Path]
REPO = Path(__file__).resolve().parents[2]  # the checkout: configs/ and tools/
TRAIN_NET = REPO / "tools" / "train_net.py"


@dataclass(frozen=True)
class Arm:
    """One training run of a benchmark.

    Args:
        config: the config file, relative to the repository root (or absolute).
        opts: ``KEY VALUE ...`` on top of it (``OUTPUT_DIR`` is the runner's).
        after: the arm it starts from: trained first, its ``model_final.pth`` is ``MODEL.WEIGHTS``.
        derived_opts: ``KEY VALUE ...`` computed from ``after``'s finished run folder, called
            just before this arm trains (e.g. a skip rate measured on its model).
    """

    config: str
    opts: Sequence = ()
    after: Optional[str] = None
    derived_opts: Optional[Callable[[Path], Sequence]] = None


def read_record(path: PathLike) -> dict:
    """The benchmark record in ``path`` (an empty one when there is none), with its ``runs``."""
    path = Path(path)
    record = json.loads(path.read_text()) if path.is_file() else {}
    record.setdefault("runs", {})
    return record


def write_record(path: PathLike, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (a reader never sees half of it)."""
    atomic_write_json(str(path), record, indent=2)


def machine() -> dict:
    """What a benchmark record says about the machine it ran on."""
    return {"cpu_count": os.cpu_count(), "torch": torch.__version__}


def is_finished(folder: PathLike) -> bool:
    """Whether the run in ``folder`` finished: its evaluation wrote :func:`results_file`."""
    return results_file(folder).is_file()


def measure_train_net(cmd: Sequence[str], output_dir: Path, log_path: Path, *,
                      cwd: Optional[Path] = None, env: Optional[Mapping[str, str]] = None) -> dict:
    """Run a ``tools/train_net.py`` command writing to ``output_dir``
    (:func:`~dynnet_d2.utils.measure.run_measured`); add its median s/iter, and its
    :func:`~dynnet_d2.engine.results.results_file` as ``results`` when it succeeded, else an
    ``error`` naming the log."""
    record = {"command": " ".join(map(str, cmd)),
              **run_measured(cmd, log_path, cwd=cwd, env=env, poll_s=0.5)}
    seconds = median_s_per_iter(output_dir)
    if seconds is not None:
        record["median_s_per_iter"] = seconds
    results = results_file(output_dir)
    if record["returncode"] == 0 and results.is_file():
        record["results"] = json.loads(results.read_text())
    elif record["returncode"] != 0:
        record["error"] = f"train_net exited with {record['returncode']}; see {log_path}"
    return record


def train_net(config: PathLike, opts: Sequence, output_dir: PathLike, log: PathLike, *,
              eval_only: bool = False, resume: Optional[bool] = None,
              threads: Optional[int] = None) -> dict:
    """One ``tools/train_net.py`` process on ``config`` with ``opts``, writing into
    ``output_dir``, measured by :func:`measure_train_net` (its output
    in ``log``): with ``--eval-only``, or with ``--resume`` when ``resume`` (default: when an
    interrupted run left ``output_dir/last_checkpoint``); ``threads``: its OpenMP / MKL threads
    (default: this process' environment)."""
    cmd = [sys.executable, str(TRAIN_NET), "--config-file", str(REPO / config)]
    if eval_only:
        cmd.append("--eval-only")
    elif resume or (resume is None and (Path(output_dir) / "last_checkpoint").is_file()):
        cmd.append("--resume")
    env = None if threads is None else dict(os.environ, OMP_NUM_THREADS=str(threads),
                                            MKL_NUM_THREADS=str(threads))
    return measure_train_net(cmd + [str(o) for o in opts], Path(output_dir), Path(log),
                             cwd=REPO, env=env)


def check_arms(arms: Mapping[str, Arm]) -> None:
    """``ValueError`` naming the arm when one starts from an arm not in ``arms``, derives options
    without starting from one, or when arms start from each other in a cycle."""
    for name, arm in arms.items():
        if arm.after is not None and arm.after not in arms:
            raise ValueError(f"arm {name!r} starts from {arm.after!r}, which is not an arm "
                             f"(arms: {sorted(arms)})")
        if arm.derived_opts is not None and arm.after is None:
            raise ValueError(f"arm {name!r} derives options from the arm it starts from, "
                             f"but starts from none (after=None)")
        chain = [name]
        while arms[chain[-1]].after is not None:
            chain.append(arms[chain[-1]].after)
            if chain[-1] in chain[:-1]:
                raise ValueError(f"arms start from each other in a cycle: "
                                 f"{' -> '.join(chain)}")


def train_arms(arms: Mapping[str, Arm], work_dir: PathLike, record: dict, out: PathLike, *,
               workers: int = 1, threads: int = 2,
               on_finished: Optional[Callable[[str, dict], None]] = None) -> Dict[str, bool]:
    """Train ``arms`` (in their order, an arm once the one it starts from finished) into
    ``work_dir/<arm>``, ``workers`` processes at a time of ``threads`` threads each; return
    ``{arm: succeeded}``.

    ``record["runs"][<arm>]`` becomes the measurement of its run (:func:`train_net`), what was
    recorded before (or ``{"skipped": "finished before", "results": <its results.json>}``) for a
    finished arm, ``{"error": ...}``
    for one that failed or raised, ``{"error": "not run: <arm> failed"}`` for one that starts
    from a failed arm; ``on_finished(arm, run_record)`` may add to the record of an arm that
    succeeded before ``out`` is rewritten, after every arm.
    """
    check_arms(arms)
    work_dir, runs = Path(work_dir), record.setdefault("runs", {})

    def train(name: str) -> dict:
        arm, folder = arms[name], work_dir / name
        if is_finished(folder):  # unrecorded (e.g. another record's run): its own results
            return runs.get(name) or {"skipped": "finished before",
                                      "results": json.loads(results_file(folder).read_text())}
        opts = list(arm.opts)
        if arm.after is not None:
            opts += ["MODEL.WEIGHTS", str(work_dir / arm.after / "model_final.pth")]
        if arm.derived_opts is not None:
            opts += list(arm.derived_opts(work_dir / arm.after))
        return train_net(arm.config, opts + ["OUTPUT_DIR", str(folder)], folder,
                         folder / "benchmark.log", threads=threads)

    def done(name: str, result: dict) -> None:
        status[name] = "error" not in result
        runs[name] = result
        if status[name] and on_finished is not None:
            on_finished(name, result)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: "
              f"{'ok' if status[name] else result['error']}", flush=True)
        write_record(out, record)

    status: Dict[str, bool] = {}
    pending, running = list(arms), {}
    with ThreadPoolExecutor(workers) as pool:
        while pending or running:
            for name in list(pending):
                after = arms[name].after
                if after is not None and status.get(after) is False:
                    pending.remove(name)
                    done(name, {"error": f"not run: {after} failed"})
                elif (after is None or status.get(after)) and len(running) < workers:
                    pending.remove(name)
                    running[pool.submit(train, name)] = name
            if not running:
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    result = future.result()
                except Exception as e:  # a failed arm is recorded; the others go on
                    result = {"error": f"{type(e).__name__}: {e}"}
                done(name, result)
    return status
