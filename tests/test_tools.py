"""Command-line tools: bad arguments rejected before any long work starts, the reports of their
records, a recorded run not run again."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dynnet_d2.engine.startup_benchmark import make_coco_dataset, run_startup_benchmark

REPO = Path(__file__).resolve().parent.parent
CONFIG = "configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml"


def _run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args,message", [
    # Before: KEY and VALUE were silently taken as two more config files.
    (["--configs", CONFIG, "SOLVER.MAX_ITER", "10"], "SOLVER.MAX_ITER"),
    (["--configs", "configs/nope.yaml"], "config file 'configs/nope.yaml' does not exist"),
    (["--configs", CONFIG, "--opts", "SOLVER.NO_SUCH_KEY", "1"],
     "Non-existent key: SOLVER.NO_SUCH_KEY"),
    (["--configs", CONFIG, "--opts", "SOLVER.MAX_ITER"], "odd length"),
])
def test_benchmark_rejects_bad_configs_before_the_first_run(tmp_path, args, message):
    proc = _run("tools/benchmark_tiny_detectors.py", "--output", tmp_path / "out.json", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out").exists()


def test_shapeprop_benchmark_rejects_a_record_of_another_schedule(tmp_path):
    (tmp_path / "out.json").write_text('{"runs": {}, "max_iter": 2800}')
    proc = _run("tools/benchmark_shapeprop.py", "--output", tmp_path / "out.json",
                "--max-iter", "1200", "--work-dir", tmp_path / "work")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "holds runs of 2800 iterations" in proc.stderr
    assert not (tmp_path / "work").exists()


def test_shapeprop_benchmark_rejects_a_seed_the_suite_does_not_have(tmp_path):
    proc = _run("tools/benchmark_shapeprop.py", "--output", tmp_path / "out.json",
                "--seeds", "0", "7", "--work-dir", tmp_path / "work")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--seeds [0, 7]: the main suite has seeds [0, 1, 2]" in proc.stderr
    assert not (tmp_path / "work").exists() and not (tmp_path / "out.json").exists()


def test_shapeprop_benchmark_report_averages_seeds_on_the_same_classes(tmp_path):
    def results(novel, base, subsets=True):
        tasks = {"segm": {"AP": (novel + base) / 2}, "bbox": {"AP": 50.0}}
        if subsets:
            tasks.update(segm_novel={"AP": novel, "AP50": novel + 20, "AP75": novel},
                         segm_base={"AP": base}, bbox_novel={"AP": 40.0})
        return tasks

    record = {"max_iter": 1200, "runs": {
        "maskrcnn_base1_seed0": {"results": results(20.0, 40.0)},
        "maskrcnn_base1_seed1": {"results": results(24.0, 42.0)},
        # the oracle's own evaluation has no subsets: its split-1 evaluation is the one used
        "oracle_seed0": {"results": results(0.0, 0.0, subsets=False),
                         "results_base1": results(50.0, 60.0)},
        "shapeprop_novel1_seed0": {"results": results(30.0, 35.0)},
        "maskrcnn_10pct_seed0": {"results": results(0.0, 0.0, subsets=False),
                                 "results_base1": results(10.0, 12.0)},
    }}
    (tmp_path / "out.json").write_text(json.dumps(record))
    proc = _run("tools/benchmark_shapeprop.py", "--output", tmp_path / "out.json", "--report-only")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split(" | ")[0]: line for line in proc.stdout.splitlines()}
    baseline = "| Mask R-CNN (class-agnostic), masks on base"
    assert rows[baseline] == (
        f"{baseline} | 2 | 22.00 ± 2.00 | 42.00 ± 2.00 | 22.00 ± 2.00 | 41.00 ± 1.00 | "
        "31.50 ± 1.50 | 40.00 ± 0.00 | 50.00 ± 0.00 |")
    oracle = "| Oracle: Mask R-CNN (class-agnostic), every mask"
    assert rows[oracle].startswith(f"{oracle} | 1 | 50.00 | 70.00")
    # masks on novel: the classes without masks (the evaluator's "novel") are split-1 base
    reverse = "| ShapeProp, masks on novel"
    assert rows[reverse] == f"{reverse} | 35.00 | 30.00 | 32.50 | 50.00 |"
    image_wise = "| Mask R-CNN, masks on 10 % of images"
    assert rows[image_wise] == f"{image_wise} | 10.00 | 12.00 | 11.00 | 50.00 |"


def test_train_net_names_an_unknown_few_shot_set_in_one_line_before_building_anything():
    proc = _run("tools/train_net.py", "--config-file",
                "configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml",
                "FEWSHOT.SHOT", 4, "OUTPUT_DIR", "/nonexistent/never_created")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dynnet_d2.data.errors.UnknownDatasetError: DATASETS.TRAIN: dataset "
                           "'shapes_train_all1_4shot_seed0' is not registered"), last
    assert "shots 1-3, 5, 10 and seeds 0-29" in last and len(last) < 600
    assert len(proc.stdout) + len(proc.stderr) < 5000  # no config dump, no model printed


def test_fsrw_class_vectors_names_an_unknown_support_set_with_exit_code_2(tmp_path):
    proc = _run("tools/fsrw_class_vectors.py", "--config-file",
                "configs/FSRW/meta_rcnn_MobileNetV2_FPN_ft_all_100itxK_shapes.yaml",
                "--supports", "shapes_train_all1_1shot_seed99", "--output", tmp_path / "x.pth",
                "FEWSHOT.SPLIT", 1, "FEWSHOT.SHOT", 1)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "'shapes_train_all1_1shot_seed99' is not registered" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.pth").exists()


def test_startup_benchmark_rejects_a_bad_tree_before_any_work(tmp_path):
    proc = _run("tools/benchmark_startup.py", "--tree", "old=/nonexistent:configs/x.yaml",
                "--data", tmp_path / "data", "--output", tmp_path / "out.json")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert ("--tree old=/nonexistent:configs/x.yaml: expected NAME=CHECKOUT:CONFIG with "
            "CHECKOUT/tools/train_net.py and CHECKOUT/CONFIG existing") in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_startup_benchmark_writes_its_dataset_once_and_skips_recorded_runs(tmp_path, capsys):
    data = tmp_path / "data"
    json_file = make_coco_dataset(data, images=3, per_image=2, polygon_points=5)
    coco = json.loads(json_file.read_text())
    assert [len(coco[k]) for k in ("images", "annotations", "categories")] == [3, 6, 20]
    assert sorted(a["id"] for a in coco["annotations"]) == [1, 2, 3, 4, 5, 6]
    assert all(len(a["segmentation"][0]) == 10 and 1 <= a["category_id"] <= 20
               for a in coco["annotations"])
    assert sorted(p.name for p in (data / "images").iterdir()) == [
        "000000.jpg", "000001.jpg", "000002.jpg"]
    written = json_file.stat().st_mtime_ns
    # a checkout whose train_net.py only says where it runs
    checkout = tmp_path / "checkout"
    (checkout / "tools").mkdir(parents=True)
    (checkout / "tools" / "train_net.py").write_text("import sys; print(sys.argv[1:])\n")
    (checkout / "base.yaml").write_text("")
    out = tmp_path / "startup.json"

    def benchmark():
        return run_startup_benchmark({"t": (checkout, "base.yaml")}, output=str(out), data=data,
                                     images=3, per_image=2, polygon_points=5, repeats=2,
                                     rerun=False, opts=[])

    assert benchmark() == 0
    assert json_file.stat().st_mtime_ns == written
    runs = json.loads(out.read_text())["runs"]
    assert [(r["tree"], r["repeat"], r["returncode"]) for r in runs] == [("t", 0, 0), ("t", 1, 0)]
    assert f"--config-file {checkout / 'base.yaml'}" in runs[0]["command"]
    capsys.readouterr()
    assert benchmark() == 0
    assert capsys.readouterr().out.count("already recorded, skipped") == 2
    assert json.loads(out.read_text())["runs"] == runs
