#!/usr/bin/env python
"""IDK cascade benchmark on Fashion-MNIST (projects/IDK/README.md): train the stages, fit every
IDK method on fashion_mnist_calib, evaluate on fashion_mnist_test, time the cascades chosen on
fashion_mnist_calib.

    python tools/benchmark_idk.py --output benchmarks/idk_fashionmnist_2cpu.json
    python tools/benchmark_idk.py --output X.json --report-only      # Markdown tables of X.json
    python tools/benchmark_idk.py --output gpu.json --timing-only --device cuda  # saved cascades

The stages, cascades and measurements: ``dynnet_d2/methods/idk/benchmark.py``. Every model
trains with tools/train_net.py into ``--work-dir/<arm>``; a finished arm
(``inference/results.json``) is not trained again, an interrupted one resumes. The JSON is
rewritten atomically after every phase.
"""
import argparse
from pathlib import Path

from dynnet_d2.engine.arms import REPO, read_record
from dynnet_d2.methods.idk import benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="JSON written after every phase")
    parser.add_argument("--work-dir", default=str(REPO / "output/IDK/benchmark"))
    parser.add_argument("--plots", default=str(REPO / "projects/IDK"))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads when timing")
    parser.add_argument("--batch1-images", type=int, default=2000,
                        help="test images served one at a time")
    parser.add_argument("--max-wait-ms", type=float, default=20.0,
                        help="also time the cascades at batch 64 with this deadline for partial "
                             "batches of later stages (CASCADE.MAX_WAIT_MS); 0 = do not")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timing-only", action="store_true",
                        help="time the saved cascades of an earlier run of --output")
    parser.add_argument("--report-only", action="store_true", help="print the Markdown tables")
    args = parser.parse_args()
    out = Path(args.output)
    record = read_record(out)
    if not args.report_only:
        benchmark.run(record, out, Path(args.work_dir), plots_dir=Path(args.plots),
                      repeats=args.repeats, threads=args.threads,
                      batch1_images=args.batch1_images, max_wait_ms=args.max_wait_ms,
                      device=args.device, timing_only=args.timing_only)
    print(benchmark.report(record))


if __name__ == "__main__":
    main()
