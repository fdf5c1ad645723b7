#!/usr/bin/env python
"""Benchmark: torchvision's CPU backward of ROIAlign against the separable one
(dynnet_d2/modeling/roi_align.py) on feature maps of this project's and of 800-pixel images
(writes a JSON).

    python tools/benchmark_roi_align.py --output benchmarks/roi_align_backward_2cpu.json

Each case times both backwards on the same random RoIs in interleaved rounds, in one process
(``dynnet_d2.modeling.roi_align.time_backwards``).
"""
import argparse

import torch

from dynnet_d2.engine.arms import machine, write_record
from dynnet_d2.modeling.roi_align import SCATTER_COST, time_backwards


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="the JSON written")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = time_backwards(rounds=args.rounds)
    write_record(args.output, {"machine": machine(), "threads": args.threads,
                               "rounds": args.rounds, "scatter_cost": SCATTER_COST,
                               "cases": rows})
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
