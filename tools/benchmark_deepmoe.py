#!/usr/bin/env python
"""DeepMoE benchmark (projects/DeepMoE/README.md): train every arm of a suite, then measure
accuracy, executed FLOPs and wall-clock time of all of them in one process on the same images.

    python tools/benchmark_deepmoe.py --suite fashionmnist   # Table 3.2 / Fig. 3.3-3.4 analogues
    python tools/benchmark_deepmoe.py --suite fashionmnist --seeds 1 2   # + the matched arms' seeds
    python tools/benchmark_deepmoe.py --suite widening       # Fig. 3.5 analogue
    python tools/benchmark_deepmoe.py --suite shapes         # detection and segmentation
    python tools/benchmark_deepmoe.py --suite shapes --report-only   # Markdown tables

The suites, arms and what is measured: ``dynnet_d2/methods/deepmoe/benchmark.py``. Every arm
trains with tools/train_net.py into ``--work-dir/<arm>``; a finished arm is not trained again,
an interrupted one resumes, a failed one is recorded and the others go on. The JSON is rewritten
atomically after every step.
"""
import argparse

from dynnet_d2.engine.arms import REPO, machine, read_record, write_record
from dynnet_d2.methods.deepmoe import benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(benchmark.SUITES), default="fashionmnist")
    parser.add_argument("--output", help="the record (default: the suite's in benchmarks/)")
    parser.add_argument("--work-dir", help="default: output/DeepMoE/<suite>")
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(benchmark.LAMBDAS))
    parser.add_argument("--wide-lambdas", type=float, nargs="*",
                        default=list(benchmark.WIDE_LAMBDAS))
    parser.add_argument("--widths", type=int, nargs="+", default=list(benchmark.WIDTHS),
                        help="widening: the width factors trained")
    parser.add_argument("--seeds", type=int, nargs="*", default=[],
                        help="fashionmnist: train the arms compared at matched FLOPs (plain, "
                             "lambda 0.005 and its fine-tuning, static, SkipNet) again with "
                             "SEED s each (<arm>_seed<s>), for their spread over seeds")
    parser.add_argument("--no-finetune", action="store_true")
    parser.add_argument("--max-iter", type=int, default=benchmark.CONFIG_MAX_ITER,
                        help="fashionmnist: iterations of every first-stage arm, the fine-tuning "
                             "stages a third of it (default: the configs'; shortens every arm "
                             "alike)")
    parser.add_argument("--workers", type=int, default=2, help="arms trained at once (1 thread "
                        "each)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="intra-op thread counts to time with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch1-images", type=int, default=1000)
    parser.add_argument("--shapes-images", type=int, default=100,
                        help="test images of the detector / segmentor backbone timing")
    parser.add_argument("--plots", default="projects/DeepMoE", help="folder of the figures")
    parser.add_argument("--timing-only", action="store_true", help="skip training")
    parser.add_argument("--no-timing", action="store_true",
                        help="train and evaluate only (time later with --timing-only, on an "
                             "otherwise idle machine)")
    parser.add_argument("--report-only", action="store_true", help="print the Markdown tables")
    args = parser.parse_args()
    make_arms, default_output = benchmark.SUITES[args.suite]
    full_length = args.max_iter == benchmark.CONFIG_MAX_ITER
    if args.max_iter < 1 or (args.suite != "fashionmnist" and not full_length):
        parser.error(f"--max-iter {args.max_iter}: a positive number of iterations, for the "
                     f"fashionmnist suite only")
    if args.seeds and (args.suite != "fashionmnist" or min(args.seeds) < 0):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: seeds >= 0, for the "
                     f"fashionmnist suite only")
    if args.timing_only and args.no_timing:
        parser.error("--timing-only and --no-timing: choose one")
    if min(args.widths) < 1:
        parser.error(f"--widths {' '.join(map(str, args.widths))}: width factors are >= 1")
    out = REPO / (args.output or default_output)
    suffix = "" if full_length else f"_{args.max_iter}it"
    work_dir = REPO / (args.work_dir or f"output/DeepMoE/{args.suite}{suffix}")
    record = read_record(out)
    if not args.report_only:
        if args.suite == "fashionmnist":
            if record.get("max_iter", args.max_iter) != args.max_iter:
                parser.error(f"--max-iter {args.max_iter}: {out} holds arms of "
                             f"{record['max_iter']} iterations; name another --output")
            record["max_iter"] = args.max_iter
            table = benchmark.with_seeds(make_arms(args.lambdas, args.wide_lambdas,
                                                   not args.no_finetune, args.max_iter),
                                         args.seeds)
        elif args.suite == "widening":
            table = make_arms(args.widths)
        else:
            table = make_arms()
        record["machine"] = machine()
        if args.suite == "shapes":
            benchmark.measure_shapes(table, record, out, work_dir, workers=args.workers,
                                     threads=args.threads, rounds=args.rounds,
                                     images=args.shapes_images, train=not args.timing_only,
                                     timing=not args.no_timing)
        else:
            benchmark.measure(table, record, out, work_dir, workers=args.workers,
                              threads=args.threads, rounds=args.rounds,
                              batch1_images=args.batch1_images, train=not args.timing_only,
                              timing=args.suite == "fashionmnist" and not args.no_timing)
            benchmark.plot(record, REPO / args.plots, args.suite)
        write_record(out, record)
    print(benchmark.report(record, args.suite))


if __name__ == "__main__":
    main()
