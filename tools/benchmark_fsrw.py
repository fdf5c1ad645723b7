#!/usr/bin/env python
"""FSRW benchmark beyond the seed table (projects/FSRW/README.md): learning speed (Fig. 6.3),
training cost, inference time against the number of classes, and the class vectors (Fig. 6.4),
as a JSON. The seed table and the ablations are sweeps (tools/run_experiments.py); run the
sweep's bases first (the error says how).

    python tools/benchmark_fsrw.py --output benchmarks/fsrw_shapes_split1_2cpu.json
    python tools/benchmark_fsrw.py --output X.json --report-only   # Markdown tables of X.json

The parts: ``dynnet_d2/methods/fsrw/benchmark.py``. Resumable: finished runs (their
``inference/results.json``) are not trained again, interrupted ones resume.
"""
import argparse
import sys
from pathlib import Path

from dynnet_d2.engine.arms import REPO, read_record
from dynnet_d2.methods.fsrw import benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="JSON written after every step")
    parser.add_argument("--work-dir", default=str(REPO / "output/FSRW/benchmark"))
    parser.add_argument("--plots", default=str(REPO / "projects/FSRW"))
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--shot", type=int, default=10, help="K of the learning-speed runs")
    parser.add_argument("--seed", type=int, default=0, help="the K-shot set's seed")
    parser.add_argument("--eval-period", type=int, default=100,
                        help="iterations between the learning-speed evaluations")
    parser.add_argument("--cost-iterations", type=int, default=100,
                        help="iterations of the phase-1 cost runs")
    parser.add_argument("--timing-images", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads when timing")
    parser.add_argument("--workers", type=int, default=1, help="trainings at once")
    parser.add_argument("--report-only", action="store_true", help="print the Markdown tables")
    args = parser.parse_args()
    out = Path(args.output)
    record = read_record(out)
    if not args.report_only:
        try:
            benchmark.run(record, out, Path(args.work_dir), Path(args.plots), split=args.split,
                          shot=args.shot, seed=args.seed, eval_period=args.eval_period,
                          cost_iterations=args.cost_iterations,
                          timing_images=args.timing_images, rounds=args.rounds,
                          threads=args.threads, workers=args.workers)
        except benchmark.MissingBaseError as e:
            print(f"benchmark_fsrw: {e}", file=sys.stderr)
            return 2
    print(benchmark.report(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
