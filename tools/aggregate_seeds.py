#!/usr/bin/env python
"""Aggregate a few-shot sweep (tools/run_experiments.py) over its seeds: per (split, shot,
method) and metric the mean, 95 % CI of the mean, std, quartiles, n and failures.

    python tools/aggregate_seeds.py output/sweeps/tfa_split1 [--task bbox] [--metric nAP50]
        [--ci t|fsdet]

Writes <sweep>/aggregate.md (Table 7.5's layout, mean±CI, with a caption saying how the CI is
computed), aggregate.csv, aggregate.json and cumulative_<metric>.png (Fig. 7.3: cumulative mean
± 95 % CI over seeds per shot), and prints the table. Works on an unfinished sweep (what has
finished so far); run records that exist but cannot be read are counted and listed (the sweep
runs them again).

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

from dynnet_d2.evaluation.seed_stats import (
    CI_METHODS,
    TABLE_METRICS,
    aggregate,
    csv_table,
    from_json,
    markdown_table,
    plot_cumulative,
    read_sweep,
    to_json,
    with_ci,
)
from dynnet_d2.utils.io import atomic_open, atomic_write_json


def recompute_ci(path: str, ci: str) -> int:
    """Rewrite the intervals of the aggregated JSON ``path``; print its table."""
    try:
        data = json.loads(Path(path).read_text())
        table = with_ci(from_json(data["rows"]), ci)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"aggregate_seeds: {path!r} is not an aggregated JSON with 'rows' "
              f"({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    atomic_write_json(path, {**data, "ci": ci, "rows": to_json(table)}, indent=1)
    metrics = [m for m in TABLE_METRICS if any(m in row for row in table.values())]
    print(markdown_table(table, metrics, ci=ci))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", nargs="?")
    parser.add_argument("--task", default="bbox")
    parser.add_argument("--metric", default="nAP50", help="metric of the cumulative plot")
    parser.add_argument("--output-dir", default=None, help="default: the sweep folder")
    parser.add_argument("--ci", choices=sorted(CI_METHODS), default="t",
                        help="95 %% CI: t (Student-t, default) or fsdet (1.96 population std)")
    parser.add_argument("--recompute-ci", metavar="JSON", default=None,
                        help="recompute the CIs of an aggregated JSON in place (no sweep folder)")
    args = parser.parse_args()
    if args.recompute_ci:
        return recompute_ci(args.recompute_ci, args.ci)
    if not args.sweep_dir or not Path(args.sweep_dir).is_dir():
        print(f"aggregate_seeds: {args.sweep_dir!r} is not a folder", file=sys.stderr)
        return 2
    records = read_sweep(args.sweep_dir)
    if not records.finished and not records.failed and not records.unreadable:
        print(f"aggregate_seeds: no run records (results.json / failed.json) under "
              f"{args.sweep_dir!r}", file=sys.stderr)
        return 2
    out = Path(args.output_dir or args.sweep_dir)
    table = aggregate(records, args.task, ci=args.ci)
    text = markdown_table(table, ci=args.ci)
    if records.unreadable:
        text += ("\n\nRun records that cannot be read (not counted; tools/run_experiments.py "
                 "runs them again):\n" + "\n".join(f"- {u}" for u in records.unreadable))
    with atomic_open(out / "aggregate.md") as f:
        f.write(text + "\n")
    with atomic_open(out / "aggregate.csv") as f:
        f.write(csv_table(table))
    atomic_write_json(out / "aggregate.json", {"sweep_dir": args.sweep_dir, "task": args.task,
                                               "ci": args.ci, "rows": to_json(table),
                                               "unreadable": records.unreadable}, indent=1)
    plotted = []
    if any(r.get("method") != "base_only" for r in records.finished):
        plot = out / f"cumulative_{args.metric}.png"
        plotted = plot_cumulative(records, str(plot), args.metric, args.task, ci=args.ci)
    print(text)
    for problem in records.unreadable:
        print(f"aggregate_seeds: unreadable run record, not counted: {problem}", file=sys.stderr)
    print(json.dumps({"finished": len(records.finished), "failed": len(records.failed),
                      "unreadable": len(records.unreadable), "plotted": plotted}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
