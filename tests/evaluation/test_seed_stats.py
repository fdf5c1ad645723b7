"""Seed aggregation (thesis §7.3): statistics against a hand computation, records of an unfinished
sweep, Table 7.5's Markdown layout, CSV, and the Fig. 7.3 plot file."""
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from dynnet_d2.evaluation.seed_stats import (
    aggregate,
    csv_table,
    cumulative,
    describe,
    markdown_table,
    plot_cumulative,
    read_sweep,
)

REPO = Path(__file__).resolve().parents[2]


def test_statistics_match_a_hand_computation():
    s = describe([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; sample variance ((1.5^2 + 0.5^2) * 2) / 3 = 5/3; CI = 1.96 * sqrt(5/3) / 2
    assert s.n == 4 and s.mean == 2.5
    assert s.std == pytest.approx(math.sqrt(5 / 3))
    assert s.ci95 == pytest.approx(1.96 * math.sqrt(5 / 3) / 2)
    assert (s.q1, s.median, s.q3) == (1.75, 2.5, 3.25)  # linear interpolation
    one = describe([7.0, float("nan")])  # an undefined AP is left out
    assert one.n == 1 and one.mean == 7.0 and math.isnan(one.ci95)
    assert describe([]).n == 0


def test_cumulative_mean_and_interval():
    cum = cumulative([2.0, 4.0, 6.0])
    assert cum[0][0] == 2.0 and math.isnan(cum[0][1])
    assert cum[1] == pytest.approx((3.0, 1.96 * math.sqrt(2.0) / math.sqrt(2.0)))
    assert cum[2] == pytest.approx((4.0, 1.96 * 2.0 / math.sqrt(3.0)))


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
        (folder / "failed.json").write_text(json.dumps({**record, "error": "boom"}))


@pytest.fixture
def sweep(tmp_path):
    for seed, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        _write(tmp_path, "cos", "TFA w/ cos", 1, seed, {"AP": value, "nAP50": 10 * value})
    _write(tmp_path, "cos", "TFA w/ cos", 1, 4, status="failed")
    _write(tmp_path, "cos", "TFA w/ cos", 1, 5, {"AP": 99.0}, raw='{"status": "fini')  # cut
    _write(tmp_path, "fc", "TFA w/ fc", 1, 0, {"AP": 5.0, "nAP50": 1.0})
    return tmp_path


def test_aggregate_reads_an_unfinished_sweep(sweep):
    records = read_sweep(str(sweep))
    assert len(records.finished) == 5 and len(records.failed) == 1
    table = aggregate(records)
    row = table[(1, 1, "TFA w/ cos")]
    assert (row["n"], row["failed"], row["seeds"]) == (4, 1, [0, 1, 2, 3])
    assert row["AP"].mean == 2.5 and row["nAP50"].mean == 25.0
    text = markdown_table(table, ["AP", "nAP50"])
    assert "| 1 | 1 | TFA w/ cos | 2.5±1.3 | 25.0±12.7 | 4 (1) |" in text
    assert "| 1 | 1 | TFA w/ fc | 5.0 | 1.0 | 1 |" in text
    rows = list(csv.DictReader(io.StringIO(csv_table(table, ["AP"]))))
    cos = [r for r in rows if r["method"] == "TFA w/ cos"][0]
    assert float(cos["ci95"]) == pytest.approx(1.96 * math.sqrt(5 / 3) / 2, abs=1e-4)
    assert float(cos["q3"]) == 3.25


def test_plot_file_is_produced(sweep, tmp_path):
    path = tmp_path / "plots" / "cumulative.png"
    assert plot_cumulative(read_sweep(str(sweep)), str(path)) == ["TFA w/ cos", "TFA w/ fc"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aggregate_seeds_tool(sweep):
    result = subprocess.run([sys.executable, "tools/aggregate_seeds.py", str(sweep)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "TFA w/ cos" in result.stdout
    for name in ("aggregate.md", "aggregate.csv", "aggregate.json", "cumulative_nAP50.png"):
        assert (sweep / name).is_file()
    rows = json.loads((sweep / "aggregate.json").read_text())["rows"]
    assert rows[0]["AP"]["mean"] == 2.5


def test_aggregate_seeds_tool_rejects_an_empty_folder(tmp_path):
    result = subprocess.run([sys.executable, "tools/aggregate_seeds.py", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no run records" in result.stderr
