#!/usr/bin/env python
"""DeepMoE benchmark on Fashion-MNIST (projects/DeepMoE/README.md): train every arm, then measure
accuracy, executed FLOPs and wall-clock time of all of them in one process on the same images.

    python tools/benchmark_deepmoe.py --output benchmarks/deepmoe_fashionmnist_2cpu.json
    python tools/benchmark_deepmoe.py --output X.json --report-only   # Markdown tables of X.json

The arms and what is measured: ``dynnet_d2/methods/deepmoe/benchmark.py``. Every arm trains with
tools/train_net.py into ``--work-dir/<arm>``; a finished arm is not trained again, an
interrupted one resumes, a failed one is recorded and the others go on. The JSON is rewritten
atomically after every step.
"""
import argparse

from dynnet_d2.engine.arms import REPO, machine, read_record, write_record
from dynnet_d2.methods.deepmoe import benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="benchmarks/deepmoe_fashionmnist_2cpu.json")
    parser.add_argument("--work-dir", default="output/DeepMoE/benchmark")
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(benchmark.LAMBDAS))
    parser.add_argument("--wide-lambdas", type=float, nargs="*",
                        default=list(benchmark.WIDE_LAMBDAS))
    parser.add_argument("--no-finetune", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="intra-op thread counts to time with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch1-images", type=int, default=1000)
    parser.add_argument("--timing-only", action="store_true", help="skip training")
    parser.add_argument("--report-only", action="store_true", help="print the Markdown tables")
    args = parser.parse_args()
    out, work_dir = REPO / args.output, REPO / args.work_dir
    record = read_record(out)
    if not args.report_only:
        record["machine"] = machine()
        table = benchmark.arms(args.lambdas, args.wide_lambdas, not args.no_finetune)
        benchmark.measure(table, record, out, work_dir, workers=args.workers,
                          threads=args.threads, rounds=args.rounds,
                          batch1_images=args.batch1_images, train=not args.timing_only)
        write_record(out, record)
    print(benchmark.report(record))


if __name__ == "__main__":
    main()
