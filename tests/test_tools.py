"""Command-line tools reject bad arguments before any long work starts."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIG = "configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml"


def _run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args,message", [
    # Before: KEY and VALUE were silently taken as two more config files.
    (["--configs", CONFIG, "SOLVER.MAX_ITER", "10"], "SOLVER.MAX_ITER"),
    (["--configs", "configs/nope.yaml"], "config file 'configs/nope.yaml' does not exist"),
    (["--configs", CONFIG, "--opts", "SOLVER.NO_SUCH_KEY", "1"],
     "Non-existent key: SOLVER.NO_SUCH_KEY"),
    (["--configs", CONFIG, "--opts", "SOLVER.MAX_ITER"], "odd length"),
])
def test_benchmark_rejects_bad_configs_before_the_first_run(tmp_path, args, message):
    proc = _run("tools/benchmark_tiny_detectors.py", "--output", tmp_path / "out.json", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out").exists()
