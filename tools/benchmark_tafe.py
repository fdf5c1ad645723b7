#!/usr/bin/env python
"""TAFE-Net benchmark on the synthetic shapes (projects/TAFE/README.md): generalized zero-shot
on each few-shot split's novel shapes, compositional zero-shot on (texture, shape) and (colour,
shape) pairs, against the baselines on the same cached features, and the embedding-loss
ablation.

    python tools/benchmark_tafe.py --output benchmarks/tafe_shapes_2cpu.json
    python tools/benchmark_tafe.py --output X.json --report-only     # Markdown tables of X.json
    python tools/benchmark_tafe.py --output X.json --only zsl1 pairs_texture  # some arms

The arms and what is read back: ``dynnet_d2/methods/tafe/benchmark.py``. Every arm trains with
tools/train_net.py into ``--work-dir/<arm>``; a finished arm is not trained again, an
interrupted one resumes, a failed one is recorded and the others go on. The JSON is rewritten
atomically after every arm.
"""
import argparse

from dynnet_d2.engine.arms import REPO, machine, read_record, write_record
from dynnet_d2.methods.tafe import benchmark


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="benchmarks/tafe_shapes_2cpu.json")
    parser.add_argument("--work-dir", default="output/TAFE/benchmark")
    parser.add_argument("--only", nargs="*", default=[],
                        help="train only the arms whose name starts with one of these")
    parser.add_argument("--no-ablation", action="store_true", help="no beta = 0 arms")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plots", default="projects/TAFE", help="folder of the figures")
    parser.add_argument("--report-only", action="store_true", help="print the Markdown tables")
    args = parser.parse_args()
    out, work_dir = REPO / args.output, REPO / args.work_dir
    record = read_record(out)
    if not args.report_only:
        record["machine"] = machine()
        table = benchmark.selected(benchmark.arms(not args.no_ablation), args.only)
        benchmark.measure(table, record, out, work_dir, workers=args.workers,
                          threads=args.threads)
        record["figures"] = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)
                             for p in benchmark.figures(work_dir, REPO / args.plots)]
        write_record(out, record)
    print(benchmark.report(record))


if __name__ == "__main__":
    main()
