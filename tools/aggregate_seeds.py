#!/usr/bin/env python
"""Aggregate a few-shot sweep (tools/run_experiments.py) over its seeds: per (split, shot,
method) and metric the mean, 95 % CI (1.96 std / sqrt(n)), std, quartiles, n and failures.

    python tools/aggregate_seeds.py output/sweeps/tfa_split1 [--task bbox] [--metric nAP50]

Writes <sweep>/aggregate.md (Table 7.5's layout, mean±CI), aggregate.csv, aggregate.json and
cumulative_<metric>.png (Fig. 7.3: cumulative mean ± 95 % CI over seeds per shot), and prints
the table. Works on an unfinished sweep (what has finished so far).
"""
import argparse
import json
import sys
from pathlib import Path

from dynnet_d2.evaluation.seed_stats import (
    aggregate,
    csv_table,
    markdown_table,
    plot_cumulative,
    read_sweep,
    to_json,
)
from dynnet_d2.utils.io import atomic_open, atomic_write_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir")
    parser.add_argument("--task", default="bbox")
    parser.add_argument("--metric", default="nAP50", help="metric of the cumulative plot")
    parser.add_argument("--output-dir", default=None, help="default: the sweep folder")
    args = parser.parse_args()
    if not Path(args.sweep_dir).is_dir():
        print(f"aggregate_seeds: {args.sweep_dir!r} is not a folder", file=sys.stderr)
        return 2
    records = read_sweep(args.sweep_dir)
    if not records.finished and not records.failed:
        print(f"aggregate_seeds: no run records (results.json / failed.json) under "
              f"{args.sweep_dir!r}", file=sys.stderr)
        return 2
    out = Path(args.output_dir or args.sweep_dir)
    table = aggregate(records, args.task)
    text = markdown_table(table)
    with atomic_open(out / "aggregate.md") as f:
        f.write(text + "\n")
    with atomic_open(out / "aggregate.csv") as f:
        f.write(csv_table(table))
    atomic_write_json(out / "aggregate.json", {"sweep_dir": args.sweep_dir, "task": args.task,
                                               "rows": to_json(table)}, indent=1)
    plotted = []
    if any(r.get("method") != "base_only" for r in records.finished):
        plot = out / f"cumulative_{args.metric}.png"
        plotted = plot_cumulative(records, str(plot), args.metric, args.task)
    print(text)
    print(json.dumps({"finished": len(records.finished), "failed": len(records.failed),
                      "plotted": plotted}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
