#!/usr/bin/env python
"""Aggregate a few-shot sweep (tools/run_experiments.py) over its seeds: per (split, shot,
method) and metric the mean, 95 % CI of the mean, std, quartiles, n and failures.

    python tools/aggregate_seeds.py output/sweeps/tfa_split1 [--task bbox] [--metric nAP50]
        [--ci t|fsdet] [--paired meta_rcnn cos]

Writes <sweep>/aggregate.md (Table 7.5's layout, mean±CI, with a caption saying how the CI is
computed), aggregate.csv, aggregate.json and cumulative_<metric>.png (Fig. 7.3: cumulative mean
± 95 % CI over seeds per shot), and prints the table. Works on an unfinished sweep (what has
finished so far); run records that exist but cannot be read are counted and listed (the sweep
runs them again).

--paired METHOD BASELINE (repeatable, sweep method names): also the difference METHOD − BASELINE
seed by seed over the seeds both finished (the same K-shot set), mean ± CI per split and shot,
in aggregate.md and aggregate.json ("paired").

--ci t (default): Student-t, t(0.975, n-1) · s / √n with the sample std s, right for any n.
--ci fsdet: fsdet's 1.96 · population std / √n, to compare with published tables.

Recompute the intervals of an aggregated JSON without its sweep folder (aggregate.json, or a
benchmark JSON holding its "rows", e.g. benchmarks/tfa_sweep_split1_2cpu.json), from the n and
sample std it stores; the file is rewritten in place and the table printed:

    python tools/aggregate_seeds.py --recompute-ci benchmarks/tfa_sweep_split1_2cpu.json --ci t
"""
import argparse
import json
import sys
from pathlib import Path

from dynnet_d2.experiments.seed_stats import (
    CI_METHODS,
    read_sweep,
    recompute_ci_file,
    write_aggregate,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", nargs="?")
    parser.add_argument("--task", default="bbox")
    parser.add_argument("--metric", default="nAP50", help="metric of the cumulative plot")
    parser.add_argument("--output-dir", default=None, help="default: the sweep folder")
    parser.add_argument("--ci", choices=sorted(CI_METHODS), default="t",
                        help="95 %% CI: t (Student-t, default) or fsdet (1.96 population std)")
    parser.add_argument("--paired", nargs=2, action="append", default=[],
                        metavar=("METHOD", "BASELINE"),
                        help="also METHOD - BASELINE seed by seed (sweep method names, e.g. "
                             "meta_rcnn cos); repeatable")
    parser.add_argument("--recompute-ci", metavar="JSON", default=None,
                        help="recompute the CIs of an aggregated JSON in place (no sweep folder)")
    args = parser.parse_args()
    if args.recompute_ci:
        try:
            print(recompute_ci_file(args.recompute_ci, args.ci))
        except ValueError as e:
            print(f"aggregate_seeds: {e}", file=sys.stderr)
            return 2
        return 0
    if not args.sweep_dir or not Path(args.sweep_dir).is_dir():
        print(f"aggregate_seeds: {args.sweep_dir!r} is not a folder", file=sys.stderr)
        return 2
    records = read_sweep(args.sweep_dir)
    if not records.finished and not records.failed and not records.unreadable:
        print(f"aggregate_seeds: no run records (results.json / failed.json) under "
              f"{args.sweep_dir!r}", file=sys.stderr)
        return 2
    try:
        text, plotted = write_aggregate(records, args.sweep_dir,
                                        Path(args.output_dir or args.sweep_dir), args.task,
                                        args.ci, args.metric, [tuple(p) for p in args.paired])
    except ValueError as e:
        print(f"aggregate_seeds: {e}", file=sys.stderr)
        return 2
    print(text)
    for problem in records.unreadable:
        print(f"aggregate_seeds: unreadable run record, not counted: {problem}", file=sys.stderr)
    print(json.dumps({"finished": len(records.finished), "failed": len(records.failed),
                      "unreadable": len(records.unreadable), "plotted": plotted}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
