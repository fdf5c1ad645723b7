#!/usr/bin/env python
"""ShapeProp benchmark on the synthetic shapes (projects/ShapeProp/README.md, thesis ch. 8).

    python tools/benchmark_shapeprop.py --output benchmarks/shapeprop_main_2cpu.json
    python tools/benchmark_shapeprop.py --output benchmarks/shapeprop_main_2cpu.json --seeds 0
    python tools/benchmark_shapeprop.py --suite ablations \\
        --output benchmarks/shapeprop_shapes_2cpu.json
    python tools/benchmark_shapeprop.py --output X.json --report-only   # Markdown tables of X.json

The suites of arms and what is measured: ``dynnet_d2/methods/shapeprop/benchmark.py``: "main"
(the configs' schedule, 3 seeds: the class-agnostic Mask R-CNN, its capacity-matched variant,
ShapeProp; its first version with seed 0), "ablations" (the reverse direction, image-wise
masks, oracles, channel-agnostic kernels; 1200 iterations), "validation"
(MIL_NEGATIVE_FRACTION chosen on shapes_val). Every arm of a suite on one schedule
(``--max-iter``, default the suite's; the LR steps at the configs' fractions). Each arm trains
with tools/train_net.py into ``--work-dir/<arm>``; a finished arm (``inference/results.json``)
is skipped, an interrupted one resumes from its last checkpoint, and an arm whose evaluation the
JSON holds (same config and options) is not trained again even when its folder is gone:
``--seeds`` measures a long suite a few seeds at a time. The JSON is rewritten atomically after
every arm and phase.
"""
import argparse
from pathlib import Path

from dynnet_d2.engine.arms import REPO, read_record
from dynnet_d2.methods.shapeprop import benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="JSON written after every phase")
    parser.add_argument("--suite", choices=sorted(benchmark.SUITES), default="main")
    parser.add_argument("--work-dir", help="default: output/ShapeProp/benchmark_<max-iter>it "
                                           "(validation: validation_<max-iter>it)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="iterations of every arm (default: the suite's; the configs' "
                             f"schedule: {benchmark.CONFIG_MAX_ITER})")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train only the arms of these seeds (default: all the suite's)")
    parser.add_argument("--workers", type=int, default=2, help="arms trained at once")
    parser.add_argument("--threads", type=int, default=1, help="threads of each training")
    parser.add_argument("--plots", default=str(REPO / "projects/ShapeProp"))
    parser.add_argument("--quality-images", type=int, default=0,
                        help="test images for the shape quality (0: all)")
    parser.add_argument("--timing-images", type=int, default=100)
    parser.add_argument("--timing-train-iters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--report-only", action="store_true", help="print the Markdown tables")
    args = parser.parse_args()
    out = Path(args.output)
    args.max_iter = args.max_iter or benchmark.SUITES[args.suite].max_iter
    folder = "validation" if args.suite == "validation" else "benchmark"
    work = Path(args.work_dir or REPO / f"output/ShapeProp/{folder}_{args.max_iter}it")
    record = read_record(out)
    if not args.report_only:
        if record.get("max_iter", args.max_iter) != args.max_iter:
            parser.error(f"--max-iter {args.max_iter}: {out} holds runs of "
                         f"{record['max_iter']} iterations; name another --output and --work-dir")
        if record.get("suite", args.suite) != args.suite:
            parser.error(f"--suite {args.suite}: {out} holds the {record['suite']} suite")
        suite_seeds = {benchmark.arm_seed(arm[2]) for arm in
                       benchmark.SUITES[args.suite].arms.values()}
        if args.seeds is not None and not set(args.seeds) <= suite_seeds:
            parser.error(f"--seeds {args.seeds}: the {args.suite} suite has seeds "
                         f"{sorted(suite_seeds)}")
        benchmark.run(record, out, work, suite=args.suite, max_iter=args.max_iter,
                      seeds=args.seeds, workers=args.workers, threads=args.threads,
                      plots_dir=Path(args.plots),
                      quality_images=args.quality_images, timing_images=args.timing_images,
                      timing_train_iters=args.timing_train_iters, rounds=args.rounds)
    print(benchmark.report(record))


if __name__ == "__main__":
    main()
