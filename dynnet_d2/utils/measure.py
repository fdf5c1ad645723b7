"""Run a command and measure it: wall time and the peak resident memory of its process tree;
the median s/iter of a Detectron2 run (``engine.arms.measure_train_net`` adds it and the
evaluation results to a ``tools/train_net.py`` run's record). Compare
things in one process: :func:`interleaved_rounds` / :func:`interleaved_median_s`."""
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import psutil

from .signals import end_process_tree, sigterm_as_interrupt


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of ``process`` and all its descendants (0 for those that just ended)."""
    total = 0
    for p in [process] + process.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd: Sequence[str], log_path: Path, *, cwd: Optional[Path] = None,
                 env: Optional[Mapping[str, str]] = None, poll_s: float = 0.2) -> Dict[str, float]:
    """Run ``cmd`` with stdout and stderr to ``log_path``; return its ``returncode``, ``wall_s``
    and ``peak_rss_mib`` (sampled every ``poll_s`` seconds). Interrupted (Ctrl-C, or SIGTERM to
    this process), it ends the command and its descendants before raising."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log, sigterm_as_interrupt():
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        ps, peak = psutil.Process(proc.pid), 0
        try:
            while proc.poll() is None:
                peak = max(peak, tree_rss(ps))
                time.sleep(poll_s)
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C, SIGTERM): the command ends too
                end_process_tree(proc.pid)
    return {"returncode": proc.returncode, "wall_s": round(time.perf_counter() - start, 2),
            "peak_rss_mib": round(peak / 2**20)}


def median_s_per_iter(output_dir: Path) -> Optional[float]:
    """Median seconds per iteration of a Detectron2 run (its ``metrics.json``), or None."""
    metrics = Path(output_dir) / "metrics.json"
    if not metrics.is_file():
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    times = [r["time"] for r in rows if "time" in r]
    return round(statistics.median(times), 4) if times else None


def interleaved_rounds(fns: Mapping[str, Callable[[], Any]], rounds: int) -> Dict[str, List[Any]]:
    """``{name: [what fns[name]() returned in each round]}``: every function called once per
    round, one after another, ``rounds`` rounds, so that machine noise hits all alike."""
    results: Dict[str, List[Any]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            results[name].append(fn())
    return results


def interleaved_median_s(fns: Mapping[str, Callable[[], None]], rounds: int) -> Dict[str, dict]:
    """``{name: {"median_s", "runs_s"}}``: the wall time of each call of
    :func:`interleaved_rounds`."""
    def timed(fn):
        def call():
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        return call

    runs = interleaved_rounds({name: timed(fn) for name, fn in fns.items()}, rounds)
    return {name: {"median_s": statistics.median(r), "runs_s": r} for name, r in runs.items()}
