#!/usr/bin/env python
"""``make demo``: generate the synthetic data, fine-tune the tiny ImageNet-initialised detector
briefly, evaluate it, save visualized predictions and print the metrics table.

    python tools/demo.py [--output-dir output/demo] [--iters 500] [KEY VALUE ...]
"""
import argparse
import os
import sys
import time
from pathlib import Path

from dynnet_d2.config import load_config
from dynnet_d2.data.builtin import ensure_shapes
from dynnet_d2.engine import DynnetTrainer
from dynnet_d2.utils.logger import setup_logger

CONFIG = (Path(__file__).resolve().parent.parent / "configs"
          / "faster_rcnn_MobileNetV2_FPN_2800it_shapes.yaml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("--iters", type=int, default=500, help="training iterations (batch 4)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args()

    start = time.perf_counter()
    print(f"[demo] synthetic data: {ensure_shapes()}  ({time.perf_counter() - start:.1f} s)")
    cfg = load_config(str(CONFIG), [
        "OUTPUT_DIR", args.output_dir, "SOLVER.MAX_ITER", args.iters,
        "SOLVER.STEPS", (int(args.iters * 0.8),), "SOLVER.WARMUP_ITERS", min(100, args.iters // 3),
        "SOLVER.CHECKPOINT_PERIOD", args.iters, "TEST.VIS_NUM_IMAGES", 6,
        "TEST.VIS_SCORE_THRESH", 0.2,
    ] + args.opts)
    cfg.freeze()
    setup_logger(cfg.OUTPUT_DIR)
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    # Detectron2's EvalHook evaluates DATASETS.TEST after the last iteration
    results = trainer.train()
    summary = ", ".join(f"{task} AP50 {m['AP50']:.1f} AP {m['AP']:.1f}"
                        for task, m in results.items())
    print(f"[demo] metrics on {cfg.DATASETS.TEST[0]} (table above): {summary}")
    print(f"[demo] results: {os.path.join(cfg.OUTPUT_DIR, 'inference', 'results.json')}")
    print(f"[demo] visualizations: {os.path.join(cfg.OUTPUT_DIR, 'visualizations')}")
    print(f"[demo] done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
