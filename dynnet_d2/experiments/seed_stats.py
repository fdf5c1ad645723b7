"""Statistics over a few-shot sweep's seeds (thesis §7.3, Table 7.5, Fig. 7.3).

Per (split, shot, method) and metric: mean, 95 % confidence interval of the mean, std (the
sample standard deviation, ddof = 1), quartiles, n and the number of failed runs. The interval
(:data:`CI_METHODS`) is Student-t's by default, ``t(0.975, n - 1) * std / sqrt(n)``, right for
every n (1.96 instead of t would be 29 % too narrow at 5 seeds, 6 % at 20); ``"fsdet"`` is the
``aggregate_seeds.py`` of fsdet, ``1.96 * population std / sqrt(n)``, to compare with published
tables. Reads the ``results.json`` / ``failed.json`` records of :mod:`dynnet_d2.experiments.sweep`
from a sweep folder, finished or not, and lists the records that cannot be read; an aggregated
JSON's intervals can be recomputed from its n and std alone (:func:`from_json`,
:func:`with_ci`). Two methods of one sweep are compared seed by seed (the same K-shot set) by
:func:`paired_differences`: the mean and interval of their difference over the shared seeds.
"""
import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.io import atomic_open, atomic_write_json
from ..utils.stats import CI_METHODS, Z_95, Stats, ci95, describe  # noqa: F401  (re-exported)
from .sweep.records import read_run

# Table 7.5's columns.
TABLE_METRICS = ("AP", "AP50", "AP75", "bAP", "bAP50", "bAP75", "nAP", "nAP50", "nAP75")


def cumulative(values: Sequence[float], ci: str = "t") -> List[Tuple[float, float]]:
    """(mean, ci95) of the first 1, 2, ..., n values (Fig. 7.3)."""
    return [(s.mean, s.ci95)
            for s in (describe(values[:i], ci) for i in range(1, len(values) + 1))]


@dataclass
class SweepRecords:
    finished: List[dict]
    failed: List[dict]
    unreadable: List[str]  # "path why" of each record file that is not a complete record


def read_sweep(sweep_dir: str) -> SweepRecords:
    """The finished and failed run records under ``sweep_dir`` (``<method>/<run>/``), and the
    record files that cannot be read; a run counts as finished as the sweep counts it
    (:mod:`dynnet_d2.experiments.sweep.records`)."""
    finished, failed, unreadable = [], [], []
    for folder in sorted(p for p in Path(sweep_dir).glob("*/*") if p.is_dir()):
        state = read_run(folder)
        unreadable += state.unreadable
        for record, kept in ((state.finished, finished), (state.failed, failed)):
            if record is None:
                continue
            if "split" in record:
                kept.append(record)
            else:
                unreadable.append(f"{folder}: a record without the run's split, shot and seed "
                                  f"(not written by a sweep)")
    return SweepRecords(finished, failed, unreadable)


Group = Tuple[int, int, str]  # (split, shot, method label); shot 0 for base-only


def group_key(record: dict) -> Group:
    shot = 0 if record.get("method") == "base_only" else record["shot"]
    return (record["split"], shot, record.get("label", record["method"]))


def aggregate(records: SweepRecords, task: str = "bbox",
              metrics: Iterable[str] = TABLE_METRICS, ci: str = "t") -> Dict[Group, dict]:
    """``{(split, shot, method): {"n", "failed", "seeds", metric: Stats}}``, seeds in order, the
    intervals by ``ci`` (:data:`CI_METHODS`)."""
    runs: Dict[Group, List[dict]] = defaultdict(list)
    for record in records.finished:
        runs[group_key(record)].append(record)
    failures: Dict[Group, int] = defaultdict(int)
    for record in records.failed:
        failures[group_key(record)] += 1
    table = {}
    for key in sorted(set(runs) | set(failures)):
        group = sorted(runs.get(key, []), key=lambda r: r["seed"])
        row = {"n": len(group), "failed": failures.get(key, 0),
               "seeds": [r["seed"] for r in group]}
        for metric in metrics:
            row[metric] = describe([_metric(r, task, metric) for r in group], ci)
        table[key] = row
    return table


PAIRED_METRICS = ("AP", "bAP50", "nAP50")  # the columns of a paired comparison by default


def paired_differences(records: SweepRecords, method: str, baseline: str, task: str = "bbox",
                       metrics: Sequence[str] = PAIRED_METRICS,
                       ci: str = "t") -> Dict[Tuple[int, int], dict]:
    """``{(split, shot): {"seeds", metric: Stats}}``: ``method``'s metric minus ``baseline``'s on
    every seed that both finished (methods by their sweep names, e.g. ``meta_rcnn`` and
    ``cos``), the interval by ``ci``. ``ValueError`` naming a method without finished runs and
    the methods that have some."""
    runs: Dict[Tuple[int, int, int], Dict[str, dict]] = defaultdict(dict)
    for record in records.finished:
        if record.get("method") in (method, baseline):
            runs[record["split"], record["shot"], record["seed"]][record["method"]] = record
    present = {m for pair in runs.values() for m in pair}
    for name in (method, baseline):
        if name not in present:
            known = sorted({r.get("method") for r in records.finished})
            raise ValueError(f"no finished run of method {name!r} in the sweep (methods with "
                             f"finished runs: {', '.join(map(str, known)) or 'none'})")
    table: Dict[Tuple[int, int], dict] = {}
    for (split, shot, seed), pair in sorted(runs.items()):
        if len(pair) == 2:
            table.setdefault((split, shot), {"seeds": []})["seeds"].append(seed)
    for (split, shot), row in table.items():
        for metric in metrics:
            row[metric] = describe([_metric(runs[split, shot, s][method], task, metric)
                                    - _metric(runs[split, shot, s][baseline], task, metric)
                                    for s in row["seeds"]], ci)
    return table


def paired_markdown(table: Dict[Tuple[int, int], dict], method: str, baseline: str,
                    metrics: Sequence[str] = PAIRED_METRICS, ci: str = "t") -> str:
    """:func:`paired_differences` as a Markdown table, its caption below."""
    lines = ["| split | shots | " + " | ".join(f"{m}: {method} − {baseline}" for m in metrics)
             + " | seeds |", "|---|---|" + "---|" * len(metrics) + "---|"]
    for (split, shot), row in table.items():
        cells = " | ".join(_cell(row[m]) for m in metrics)
        lines.append(f"| {split} | {shot} | {cells} | {len(row['seeds'])} |")
    return "\n".join(lines + ["", f"Cells: mean ± half-width of the 95 % confidence interval of "
                                  f"the mean difference over the seeds both methods finished "
                                  f"(the same K-shot set; {CI_METHODS[ci]})."])


def paired_to_json(table: Dict[Tuple[int, int], dict]) -> List[dict]:
    """:func:`paired_differences` as JSON-safe rows."""
    return [{"split": split, "shot": shot, "seeds": row["seeds"], **_stats_to_json(row)}
            for (split, shot), row in table.items()]


def _metric(record: dict, task: str, metric: str) -> float:
    """A finished run's ``metric`` of ``task`` (nan where it has none)."""
    return record["results"].get(task, {}).get(metric, math.nan)


def _stats_to_json(row: dict) -> dict:
    """``{metric: {statistic: value}}`` of the :class:`Stats` in ``row``, nan as null."""
    def number(x):
        return None if isinstance(x, float) and math.isnan(x) else x

    return {m: {k: number(v) for k, v in vars(s).items()}
            for m, s in row.items() if isinstance(s, Stats)}


def to_json(table: Dict[Group, dict]) -> List[dict]:
    """The table as JSON-safe rows (nan as null)."""
    return [{"split": split, "shot": shot, "method": method, "n": row["n"],
             "failed": row["failed"], "seeds": row["seeds"], **_stats_to_json(row)}
            for (split, shot, method), row in table.items()]


def from_json(rows: Sequence[dict]) -> Dict[Group, dict]:
    """The table of :func:`to_json`'s ``rows`` (e.g. an ``aggregate.json``'s, or a benchmark
    JSON's that holds them)."""
    def number(x):
        return math.nan if x is None else x

    table = {}
    for row in rows:
        entry = {"n": row["n"], "failed": row["failed"], "seeds": row["seeds"]}
        for metric, values in row.items():
            if isinstance(values, dict):
                entry[metric] = Stats(**{k: number(v) for k, v in values.items()})
        table[(row["split"], row["shot"], row["method"])] = entry
    return table


def with_ci(table: Dict[Group, dict], ci: str) -> Dict[Group, dict]:
    """``table`` with every interval recomputed by ``ci`` from its n and (sample) std."""
    return {key: {name: replace(value, ci95=ci95(value.std, value.n, ci))
                  if isinstance(value, Stats) else value for name, value in row.items()}
            for key, row in table.items()}


def _cell(stats: Stats) -> str:
    if stats.n == 0:
        return "–"
    if stats.n == 1:
        return f"{stats.mean:.1f}"
    return f"{stats.mean:.1f}±{stats.ci95:.1f}"


def caption(ci: str = "t") -> str:
    """What the cells of :func:`markdown_table` are."""
    return (f"Cells: mean ± half-width of the 95 % confidence interval of the mean over seeds "
            f"({CI_METHODS[ci]}); a single seed shows its value. n: finished runs (failed ones "
            f"in parentheses).")


def markdown_table(table: Dict[Group, dict], metrics: Sequence[str] = TABLE_METRICS,
                   ci: str = "t") -> str:
    """Table 7.5's layout: split, shots, method, then mean±95 % CI of each metric and n; the
    caption (:func:`caption`) below."""
    lines = ["| split | shots | method | " + " | ".join(metrics) + " | n (failed) |",
             "|---|---|---|" + "---|" * len(metrics) + "---|"]
    for (split, shot, method), row in table.items():
        cells = " | ".join(_cell(row[m]) for m in metrics)
        failed = f" ({row['failed']})" if row["failed"] else ""
        lines.append(f"| {split} | {shot or '–'} | {method} | {cells} | {row['n']}{failed} |")
    return "\n".join(lines + ["", caption(ci)])


def csv_table(table: Dict[Group, dict], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """One row per (split, shot, method, metric) with every statistic."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["split", "shot", "method", "metric", "n", "failed", "mean", "ci95", "std",
                     "q1", "median", "q3"])
    for (split, shot, method), row in table.items():
        for m in metrics:
            s = row[m]
            writer.writerow([split, shot, method, m, s.n, row["failed"], *(
                "" if math.isnan(x) else round(x, 4)
                for x in (s.mean, s.ci95, s.std, s.q1, s.median, s.q3))])
    return out.getvalue()


def plot_cumulative(records: SweepRecords, path: str, metric: str = "nAP50",
                    task: str = "bbox", split: Optional[int] = None, ci: str = "t") -> List[str]:
    """Fig. 7.3: per method a panel, per shot the cumulative mean ± 95 % CI (by ``ci``) of
    ``metric`` over the seeds (in seed order). Returns the methods plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    by_method: Dict[str, Dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in records.finished:
        if r.get("method") == "base_only" or (split is not None and r["split"] != split):
            continue
        value = r["results"].get(task, {}).get(metric)
        if value is not None:
            by_method[r.get("label", r["method"])][r["shot"]].append((r["seed"], value))
    methods = sorted(by_method)
    if not methods:
        raise ValueError(f"no finished fine-tuning run with {task} {metric} to plot")
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 3.8), squeeze=False,
                             sharey=True)
    for ax, method in zip(axes[0], methods):
        for shot in sorted(by_method[method]):
            values = [v for _, v in sorted(by_method[method][shot])]
            cum = cumulative(values, ci)
            x = np.arange(1, len(values) + 1)
            mean = np.array([m for m, _ in cum])
            half_width = np.nan_to_num(np.array([c for _, c in cum]))
            ax.plot(x, mean, label=f"{shot} shot")
            ax.fill_between(x, mean - half_width, mean + half_width, alpha=0.2)
        ax.set_title(method)
        ax.set_xlabel("number of seeds")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"cumulative mean {metric} ± 95% CI "
                          f"({'Student-t' if ci == 't' else 'fsdet, 1.96·σ'})")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return methods


def recompute_ci_file(path: str, ci: str) -> str:
    """Rewrite the intervals of the aggregated JSON ``path`` (``aggregate.json``, or a benchmark
    JSON with its ``rows``) from the n and sample std it stores; return its Markdown table.
    ``ValueError`` naming the file when it is not such a JSON."""
    try:
        data = json.loads(Path(path).read_text())
        table = with_ci(from_json(data["rows"]), ci)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path!r} is not an aggregated JSON with 'rows' "
                         f"({type(e).__name__}: {e})") from e
    atomic_write_json(path, {**data, "ci": ci, "rows": to_json(table)}, indent=1)
    metrics = [m for m in TABLE_METRICS if any(m in row for row in table.values())]
    return markdown_table(table, metrics, ci=ci)


def write_aggregate(records: SweepRecords, sweep_dir: str, out: Path, task: str, ci: str,
                    metric: str, paired: Sequence[Tuple[str, str]] = ()
                    ) -> Tuple[str, List[str]]:
    """``aggregate.md`` (with the unreadable records listed), ``aggregate.csv``,
    ``aggregate.json`` and ``cumulative_<metric>.png`` of ``records`` in ``out``, with a paired
    comparison (:func:`paired_differences`) of each (method, baseline) of ``paired``; returns
    the Markdown text and the shots plotted. A method of ``paired`` without finished runs is a
    ``ValueError`` before anything is written."""
    table = aggregate(records, task, ci=ci)
    comparisons = [(method, baseline, paired_differences(records, method, baseline, task, ci=ci))
                   for method, baseline in paired]
    text = markdown_table(table, ci=ci)
    for method, baseline, differences in comparisons:
        text += "\n\n" + paired_markdown(differences, method, baseline, ci=ci)
    if records.unreadable:
        text += ("\n\nRun records that cannot be read (not counted; tools/run_experiments.py "
                 "runs them again):\n" + "\n".join(f"- {u}" for u in records.unreadable))
    with atomic_open(out / "aggregate.md") as f:
        f.write(text + "\n")
    with atomic_open(out / "aggregate.csv") as f:
        f.write(csv_table(table))
    atomic_write_json(out / "aggregate.json", {"sweep_dir": sweep_dir, "task": task, "ci": ci,
                                               "rows": to_json(table),
                                               "paired": [{"method": m, "baseline": b,
                                                           "rows": paired_to_json(d)}
                                                          for m, b, d in comparisons],
                                               "unreadable": records.unreadable}, indent=1)
    plotted = []
    if any(r.get("method") != "base_only" for r in records.finished):
        plotted = plot_cumulative(records, str(out / f"cumulative_{metric}.png"), metric, task,
                                  ci=ci)
    return text, plotted
