#!/usr/bin/env python
"""Benchmark: train the tiny CPU detectors (from scratch or ImageNet-initialised) on shapes and
record what it cost.

For each config: wall time of the whole ``tools/train_net.py`` run (training + final
evaluation), median s/iter (Detectron2's ``metrics.json``), peak RSS of the process tree,
and the evaluation metrics. Writes one JSON (atomically, after each run); a failed run is
recorded with its error and the sweep goes on.

    python tools/benchmark_tiny_detectors.py --output output/benchmarks/tiny_detectors.json \
        [--configs configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml ...] [--opts KEY VALUE ...]

Every config is checked (the file exists, the overrides apply to it) before the first run starts.
Resumable: a config already recorded in the output JSON with results for the same overrides is
skipped (``--rerun`` runs it again).
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

from dynnet_d2.config import load_config
from dynnet_d2.engine.arms import measure_train_net
from dynnet_d2.utils.io import atomic_write_json

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = ["configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml",
                   "configs/mask_rcnn_R18half_FPN_2800it_shapes.yaml",
                   "configs/faster_rcnn_MobileNetV2_FPN_2800it_shapes.yaml",
                   "configs/mask_rcnn_MobileNetV2_FPN_2800it_shapes.yaml"]


def run_one(config: str, output_dir: Path, opts) -> dict:
    """Run train_net on ``config``; return timings, peak RSS and metrics (or the error)."""
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", config,
           "OUTPUT_DIR", str(output_dir)] + list(opts)
    return {"config": config, "opts": list(opts),
            **measure_train_net(cmd, output_dir, output_dir.with_suffix(".log"), cwd=REPO)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="config files to run")
    parser.add_argument("--output", default="output/benchmarks/tiny_detectors.json")
    parser.add_argument("--rerun", action="store_true", help="run configs already recorded again")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="config overrides KEY VALUE ... for every run (last argument)")
    args = parser.parse_args()
    for config in args.configs:
        try:
            load_config(config, args.opts)
        except Exception as e:  # any config/override error: report it before the first run
            parser.error(f"--configs {config} with --opts {args.opts}: {type(e).__name__}: {e}")
    out_root = Path(args.output).with_suffix("")
    out_root.mkdir(parents=True, exist_ok=True)
    report = {"runs": []}
    if Path(args.output).is_file():
        report = json.loads(Path(args.output).read_text())
    report["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                         "torch_threads": os.environ.get("OMP_NUM_THREADS")}
    for config in args.configs:
        done = [r for r in report["runs"] if r["config"] == config and r.get("opts") == args.opts
                and "results" in r]
        if done and not args.rerun:
            print(f"{config}: already recorded in {args.output}, skipped (--rerun to run it again)")
            continue
        run_dir = out_root / Path(config).stem
        record = run_one(config, run_dir, args.opts)
        report["runs"] = [r for r in report["runs"] if not (r["config"] == config
                                                             and r.get("opts") == args.opts)]
        report["runs"].append(record)
        atomic_write_json(args.output, report, indent=2)
        print(json.dumps(record, indent=2), flush=True)
    return 0 if all("error" not in r for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
