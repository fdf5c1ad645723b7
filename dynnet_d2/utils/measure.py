"""Run a command and measure it: wall time and the peak resident memory of its process tree."""
import subprocess
import time
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import psutil


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
    and ``peak_rss_mib`` (sampled every ``poll_s`` seconds)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        ps, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(ps))
            time.sleep(poll_s)
    return {"returncode": proc.returncode, "wall_s": round(time.perf_counter() - start, 2),
            "peak_rss_mib": round(peak / 2**20)}
