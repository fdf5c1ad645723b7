"""Seed aggregation (thesis §7.3): statistics and Student-t / fsdet intervals against a hand
computation, records of an unfinished sweep (unreadable ones listed), Table 7.5's Markdown layout
and caption, CSV, the Fig. 7.3 plot file, intervals recomputed from an aggregated JSON."""
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from dynnet_d2.experiments.seed_stats import (
    aggregate,
    csv_table,
    cumulative,
    describe,
    markdown_table,
    paired_differences,
    paired_markdown,
    plot_cumulative,
    read_sweep,
)

REPO = Path(__file__).resolve().parents[2]
# Student-t quantiles t(0.975, df) from a printed table (df 1, 2, 3, 4).
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}


def test_statistics_match_a_hand_computation():
    s = describe([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; sample variance ((1.5^2 + 0.5^2) * 2) / 3 = 5/3; CI = t(0.975, 3) sqrt(5/3) / 2
    assert s.n == 4 and s.mean == 2.5
    assert s.std == pytest.approx(math.sqrt(5 / 3))
    assert s.ci95 == pytest.approx(T_975[3] * math.sqrt(5 / 3) / 2, rel=2e-4)
    assert (s.q1, s.median, s.q3) == (1.75, 2.5, 3.25)  # linear interpolation
    one = describe([7.0, float("nan")])  # an undefined AP is left out
    assert one.n == 1 and one.mean == 7.0 and math.isnan(one.ci95)
    assert describe([]).n == 0


def test_five_seeds_student_t_and_fsdet_intervals():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, sample std sqrt(2.5), population std sqrt(2)
    t = describe(values)
    assert t.ci95 == pytest.approx(T_975[4] * math.sqrt(2.5) / math.sqrt(5), rel=2e-4)
    assert t.ci95 == pytest.approx(1.9632, abs=1e-4)  # 1.96 would give 1.386: 29 % too narrow
    fsdet = describe(values, ci="fsdet")
    assert fsdet.ci95 == pytest.approx(1.96 * math.sqrt(2.0) / math.sqrt(5))
    assert (fsdet.std, fsdet.mean) == (t.std, t.mean)  # only the interval differs
    with pytest.raises(ValueError, match="confidence interval 'z'"):
        describe(values, ci="z")


def test_cumulative_mean_and_interval():
    cum = cumulative([2.0, 4.0, 6.0])
    assert cum[0][0] == 2.0 and math.isnan(cum[0][1])
    assert cum[1] == pytest.approx((3.0, T_975[1] * math.sqrt(2.0) / math.sqrt(2.0)), rel=2e-4)
    assert cum[2] == pytest.approx((4.0, T_975[2] * 2.0 / math.sqrt(3.0)), rel=2e-4)


def _write(sweep, method, label, shot, seed, metrics=None, status="finished", raw=None):
    folder = sweep / method / f"split1_{shot}shot_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"status": status, "run": f"{method}/{folder.name}", "method": method,
              "label": label, "split": 1, "shot": shot, "seed": seed,
              "output_dir": str(folder)}
    if status == "finished":
        record["results"] = {"bbox": metrics}
        (folder / "results.json").write_text(raw if raw is not None else json.dumps(record))
    else:
        (folder / "failed.json").write_text(raw if raw is not None else
                                            json.dumps({**record, "error": "boom"}))


# Record files that exist but are not records: (seed, status, content).
UNREADABLE = [(5, "finished", '{"status": "fini'), (6, "finished", "[1]"),
              (7, "failed", "[1]"), (8, "failed", '{"status": "fa')]


@pytest.fixture
def sweep(tmp_path):
    for seed, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        _write(tmp_path, "cos", "TFA w/ cos", 1, seed, {"AP": value, "nAP50": 10 * value})
    _write(tmp_path, "cos", "TFA w/ cos", 1, 4, status="failed")
    for seed, status, raw in UNREADABLE:
        _write(tmp_path, "cos", "TFA w/ cos", 1, seed, {"AP": 99.0}, status=status, raw=raw)
    _write(tmp_path, "fc", "TFA w/ fc", 1, 0, {"AP": 5.0, "nAP50": 1.0})
    return tmp_path


def test_aggregate_reads_an_unfinished_sweep_and_lists_unreadable_records(sweep):
    records = read_sweep(str(sweep))
    assert len(records.finished) == 5 and len(records.failed) == 1
    assert [u.split(str(sweep))[1][:32] for u in records.unreadable] == [
        "/cos/split1_1shot_seed5/results.", "/cos/split1_1shot_seed6/results.",
        "/cos/split1_1shot_seed7/failed.j", "/cos/split1_1shot_seed8/failed.j"]
    assert "holds a JSON list, not an object" in records.unreadable[1]
    assert "is not valid JSON" in records.unreadable[3]
    table = aggregate(records)
    row = table[(1, 1, "TFA w/ cos")]
    assert (row["n"], row["failed"], row["seeds"]) == (4, 1, [0, 1, 2, 3])
    assert row["AP"].mean == 2.5 and row["nAP50"].mean == 25.0
    text = markdown_table(table, ["AP", "nAP50"])
    # t(0.975, 3) * sqrt(5/3) / 2 = 2.054
    assert "| 1 | 1 | TFA w/ cos | 2.5±2.1 | 25.0±20.5 | 4 (1) |" in text
    assert "| 1 | 1 | TFA w/ fc | 5.0 | 1.0 | 1 |" in text
    assert "Student-t: t(0.975, n-1) · s / √n" in text.splitlines()[-1]
    assert "fsdet's: 1.96 · σ / √n" in markdown_table(aggregate(records, ci="fsdet"), ["AP"],
                                                      ci="fsdet")
    rows = list(csv.DictReader(io.StringIO(csv_table(table, ["AP"]))))
    cos = [r for r in rows if r["method"] == "TFA w/ cos"][0]
    assert float(cos["ci95"]) == pytest.approx(T_975[3] * math.sqrt(5 / 3) / 2, rel=2e-4)
    assert float(cos["q3"]) == 3.25


def test_paired_differences_over_the_seeds_both_methods_finished(sweep):
    _write(sweep, "fc", "TFA w/ fc", 1, 1, {"AP": 1.0, "nAP50": 30.0})
    _write(sweep, "fc", "TFA w/ fc", 1, 7, {"AP": 1.0, "nAP50": 30.0})  # no cos run of seed 7
    records = read_sweep(str(sweep))
    table = paired_differences(records, "cos", "fc", metrics=("AP", "nAP50"))
    row = table[(1, 1)]
    # cos - fc on seed 0: 1 - 5 = -4 (AP), 10 - 1 = 9 (nAP50); seed 1: 2 - 1 = 1, 20 - 30 = -10
    assert row["seeds"] == [0, 1]
    assert row["AP"].mean == -1.5 and row["nAP50"].mean == -0.5
    # std of (-4, 1) = 5 / sqrt(2); half-width t(0.975, 1) * std / sqrt(2) = 12.706 * 2.5
    assert row["AP"].ci95 == pytest.approx(T_975[1] * 2.5, rel=2e-4)
    text = paired_markdown(table, "cos", "fc", metrics=("AP", "nAP50"))
    assert "| split | shots | AP: cos − fc | nAP50: cos − fc | seeds |" in text
    assert "| 1 | 1 | -1.5±31.8 | -0.5±120.7 | 2 |" in text
    with pytest.raises(ValueError, match="no finished run of method 'full'.*cos, fc"):
        paired_differences(records, "full", "cos")


def test_plot_file_is_produced(sweep, tmp_path):
    path = tmp_path / "plots" / "cumulative.png"
    assert plot_cumulative(read_sweep(str(sweep)), str(path)) == ["TFA w/ cos", "TFA w/ fc"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aggregate_seeds_tool(sweep):
    result = subprocess.run([sys.executable, "tools/aggregate_seeds.py", str(sweep)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "TFA w/ cos" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["finished"], summary["failed"], summary["unreadable"]) == (5, 1, 4)
    assert result.stderr.count("unreadable run record, not counted") == 4
    for name in ("aggregate.md", "aggregate.csv", "aggregate.json", "cumulative_nAP50.png"):
        assert (sweep / name).is_file()
    assert "split1_1shot_seed6/results.json holds a JSON list" in (
        sweep / "aggregate.md").read_text()
    aggregated = json.loads((sweep / "aggregate.json").read_text())
    assert aggregated["ci"] == "t" and len(aggregated["unreadable"]) == 4
    assert aggregated["rows"][0]["AP"]["mean"] == 2.5
    paired = subprocess.run([sys.executable, "tools/aggregate_seeds.py", str(sweep), "--paired",
                             "fc", "cos"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert paired.returncode == 0, paired.stderr
    assert "| 1 | 1 | 4.0 | " in paired.stdout  # fc - cos, seed 0 alone: AP 5 - 1
    (comparison,) = json.loads((sweep / "aggregate.json").read_text())["paired"]
    assert (comparison["method"], comparison["baseline"]) == ("fc", "cos")
    assert comparison["rows"][0]["seeds"] == [0] and comparison["rows"][0]["AP"]["mean"] == 4.0
    refused = subprocess.run([sys.executable, "tools/aggregate_seeds.py", str(sweep), "--paired",
                              "fsrw", "cos"], cwd=REPO, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and "no finished run of method 'fsrw'" in refused.stderr


def test_intervals_of_an_aggregated_json_are_recomputed_without_the_sweep(tmp_path):
    """As benchmarks/tfa_sweep_split1_2cpu.json stores them: n and the sample std per metric."""
    std = 1.9674848950450452
    row = {"split": 1, "shot": 1, "method": "FRCN+ft-full", "n": 5, "failed": 0,
           "seeds": [0, 1, 2, 3, 4],
           "AP": {"n": 5, "mean": 27.47, "std": std, "ci95": 1.96 * std / math.sqrt(5),
                  "q1": 25.75, "median": 28.3, "q3": 28.73},
           "nAP": {"n": 1, "mean": 0.2, "std": None, "ci95": None, "q1": 0.2, "median": 0.2,
                   "q3": 0.2}}
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps({"machine": "here", "rows": [row]}))
    for ci, expected in (("t", T_975[4] * std / math.sqrt(5)),
                         ("fsdet", 1.96 * std * math.sqrt(4 / 5) / math.sqrt(5))):
        result = subprocess.run([sys.executable, "tools/aggregate_seeds.py", "--recompute-ci",
                                 str(path), "--ci", ci], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        data = json.loads(path.read_text())
        assert data["machine"] == "here" and data["ci"] == ci
        assert data["rows"][0]["AP"]["ci95"] == pytest.approx(expected, rel=2e-4)
        assert data["rows"][0]["AP"]["std"] == std and data["rows"][0]["nAP"]["ci95"] is None
        assert f"| 1 | 1 | FRCN+ft-full | 27.5±{expected:.1f} |" in result.stdout


def test_aggregate_seeds_tool_rejects_an_empty_folder(tmp_path):
    result = subprocess.run([sys.executable, "tools/aggregate_seeds.py", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no run records" in result.stderr
