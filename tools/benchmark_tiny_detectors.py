#!/usr/bin/env python
"""Benchmark: train the tiny CPU detectors (from scratch or ImageNet-initialised) on shapes and
record what it cost.

For each config: wall time of the whole ``tools/train_net.py`` run (training + final
evaluation), median s/iter (Detectron2's ``metrics.json``), peak RSS of the process tree,
and the evaluation metrics. Writes one JSON (atomically, after each run); a failed run is
recorded with its error and the sweep goes on.

    python tools/benchmark_tiny_detectors.py --output output/benchmarks/tiny_detectors.json \
        [--configs configs/Base-RCNN-Tiny.yaml configs/Base-MaskRCNN-Tiny.yaml] [KEY VALUE ...]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dynnet_d2.utils.io import atomic_write_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = ["configs/Base-RCNN-Tiny.yaml", "configs/Base-MaskRCNN-Tiny.yaml",
                   "configs/Base-RCNN-MobileNetV2-Tiny.yaml", "configs/Base-MaskRCNN-MobileNetV2-Tiny.yaml"]


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_one(config: str, output_dir: Path, opts) -> dict:
    """Run train_net on ``config``; return timings, peak RSS and metrics (or the error)."""
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", config,
           "OUTPUT_DIR", str(output_dir)] + list(opts)
    start = time.perf_counter()
    log = open(output_dir.with_suffix(".log"), "w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(ps))
        time.sleep(0.5)
    record = {"config": config, "command": " ".join(cmd), "returncode": proc.returncode,
              "wall_s": round(time.perf_counter() - start, 1), "peak_rss_mib": round(peak / 2**20)}
    metrics_file = output_dir / "metrics.json"
    if metrics_file.is_file():
        rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
        times = [r["time"] for r in rows if "time" in r]
        if times:
            record["median_s_per_iter"] = round(statistics.median(times), 4)
            record["iters"] = max(r["iteration"] for r in rows if "time" in r) + 1
    results = output_dir / "inference" / "results.json"
    if proc.returncode == 0 and results.is_file():
        record["results"] = json.loads(results.read_text())
    else:
        record["error"] = f"train_net exited with {proc.returncode}; see {output_dir.with_suffix('.log')}"
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    parser.add_argument("--output", default="output/benchmarks/tiny_detectors.json")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    args = parser.parse_args()
    out_root = Path(args.output).with_suffix("")
    out_root.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch_threads": os.environ.get("OMP_NUM_THREADS")},
        "runs": [],
    }
    for config in args.configs:
        run_dir = out_root / Path(config).stem
        record = run_one(config, run_dir, args.opts)
        report["runs"].append(record)
        atomic_write_json(args.output, report, indent=2)
        print(json.dumps(record, indent=2), flush=True)
    return 0 if all("error" not in r for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
