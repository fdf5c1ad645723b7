#!/usr/bin/env python
"""SkipNet benchmark on Fashion-MNIST (projects/SkipNet/README.md): train every arm, then measure
accuracy, executed FLOPs and wall-clock time of all of them in one process on the same images.

    python tools/benchmark_skipnet.py --output benchmarks/skipnet_fashionmnist_2cpu.json

The arms and what is measured: ``dynnet_d2/methods/skipnet/benchmark.py``. Every arm trains with
tools/train_net.py into ``--work-dir/<arm>``; an arm whose ``inference/results.json`` exists is
not trained again, an interrupted one resumes from its last checkpoint, and a failed one is
recorded without stopping the others. The JSON is rewritten (atomically) after every step.
"""
import argparse

from dynnet_d2.engine.arms import REPO, machine, read_record, write_record
from dynnet_d2.methods.skipnet import benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="benchmarks/skipnet_fashionmnist_2cpu.json")
    parser.add_argument("--work-dir", default="output/SkipNet/benchmark")
    parser.add_argument("--depths", type=int, nargs="+", default=[38, 74])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="intra-op thread counts to time with")
    parser.add_argument("--batch1-images", type=int, default=1000)
    parser.add_argument("--no-alpha-sweep", action="store_true")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--timing-only", action="store_true", help="skip training")
    parser.add_argument("--report-only", action="store_true",
                        help="only the summary, plots and Markdown tables of --output")
    parser.add_argument("--plots-dir", default="projects/SkipNet")
    args = parser.parse_args()

    out, work_dir = REPO / args.output, REPO / args.work_dir
    record = read_record(out)
    table = benchmark.arms(args.depths, not args.no_alpha_sweep, not args.no_baselines)
    if not args.report_only:
        record["machine"] = machine()
        benchmark.measure(table, record, out, work_dir, depths=args.depths, threads=args.threads,
                          workers=args.workers, repeats=args.repeats,
                          batch1_images=args.batch1_images, train=not args.timing_only)
    benchmark.summarize(record, args.depths, args.threads)
    write_record(out, record)
    print(benchmark.report(record, args.depths, args.threads, REPO / args.plots_dir))


if __name__ == "__main__":
    main()
