#!/usr/bin/env python
"""Benchmark: TFA on the synthetic shapes, one seed (thesis Table 7.2's comparison), as a JSON.

Base training on the base classes of ``--split`` (reused when finished), checkpoint surgery,
then for each shot: TFA w/ cos, TFA w/ fc and FRCN+ft-full fine-tuning on the K-shot set of
``--seed``, each evaluated on ``shapes_test_all<split>`` (AP on all classes, bAP on base, nAP on
novel), and base-only (the surgery checkpoint, not fine-tuned, with the FC head the base model
was trained with: the TFA w/ fc config). Every run is a
``tools/train_net.py`` process: wall time, peak RSS of its process tree and median s/iter
(Detectron2's ``metrics.json``) are recorded with its metrics
(``dynnet_d2/methods/tfa/benchmark.py``).

    python tools/benchmark_tfa.py --output benchmarks/tfa_shapes_split1_seed0_2cpu.json \\
        [--split 1] [--seed 0] [--shots 1 3 10] [--methods cos fc full] [--opts KEY VALUE ...]

Resumable: a run already recorded with results is skipped (``--rerun NAME ...`` runs the named
ones again, e.g. ``--rerun "base only"``); an interrupted training resumes.
"""
import argparse
import sys

from dynnet_d2.engine.arms import read_record
from dynnet_d2.methods.tfa import benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--methods", nargs="+", default=list(benchmark.METHODS),
                        choices=list(benchmark.METHODS))
    parser.add_argument("--output", default="output/benchmarks/tfa.json")
    parser.add_argument("--rerun", nargs="+", default=[], metavar="NAME",
                        help="recorded runs to run again, e.g. 'base only' 'TFA w/ cos, 1-shot'")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="overrides KEY VALUE ... for every fine-tuning (last argument)")
    args = parser.parse_args()
    record = read_record(args.output)
    unknown = [name for name in args.rerun if name not in record["runs"]]
    if unknown:
        print(f"--rerun {unknown}: not recorded in {args.output} (recorded: "
              f"{sorted(record['runs'])})", file=sys.stderr)
        return 2
    return benchmark.run(record, args.output, split=args.split, seed=args.seed, shots=args.shots,
                         methods=args.methods, rerun=args.rerun, opts=args.opts)


if __name__ == "__main__":
    sys.exit(main())
