"""Few-shot sweeps: the grid, resuming (finished runs skipped, half-written ones rerun), failures
recorded without stopping the sweep, the local and submitit backends, the command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynnet_d2.config import load_config
from dynnet_d2.engine.sweep import (
    Backend,
    LocalBackend,
    Method,
    Run,
    SubmititBackend,
    execute_run,
    expand_grid,
    finished_record,
    method_from_arg,
    run_sweep,
)
from dynnet_d2.engine.sweep.cli import parse_max_iter, parse_seeds
from dynnet_d2.engine.sweep.execute import set_schedule

REPO = Path(__file__).resolve().parents[2]
COS = REPO / "configs" / "TFA" / "faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"


def _tiny_config(tmp_path, name="tiny") -> Path:
    """A fine-tuning config that trains 2 iterations of an untrained, frozen tiny detector from
    scratch (no base model needed), as a "joint" method."""
    lines = [f'_BASE_: "{COS}"', 'MODEL:', '  WEIGHTS: ""', '  DEVICE: "cpu"',
             '  ROI_HEADS:', '    SCORE_THRESH_TEST: 0.0',
             'INPUT:', '  MIN_SIZE_TRAIN: (96,)', '  MIN_SIZE_TEST: 96',
             'DATASETS:', '  CHECK_IMAGES: False']
    lines += ['SOLVER:', '  IMS_PER_BATCH: 2', '  MAX_ITER: 2', '  STEPS: (1,)',
              '  CHECKPOINT_PERIOD: 2', 'DATALOADER:', '  NUM_WORKERS: 0']
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _joint(tmp_path, name="tiny") -> Method:
    return Method(name, name, str(_tiny_config(tmp_path, name)), "joint")


class InProcessBackend(Backend):
    """Runs each item here, in order (and counts them): a backend is an interface."""

    def __init__(self):
        self.ran = []

    def map(self, fn, items):
        for item in items:
            self.ran.append(item.name)
            yield item, fn(item)


def test_grid_has_every_run_in_its_own_folder_and_base_only_once(tmp_path):
    cos, base_only = method_from_arg("cos"), method_from_arg("base_only")
    runs = expand_grid(str(tmp_path), [cos, base_only], [1, 2], [1, 5], [0, 1, 2],
                       max_iter={5: 250})
    assert len(runs) == 2 * 2 * 3 + 2
    assert len({r.output_dir for r in runs}) == len(runs)
    assert runs[0].name == "cos/split1_1shot_seed0"
    assert [r.max_iter for r in runs if r.method is cos and r.shot == 5][0] == 250
    assert [r.name for r in runs if r.method is base_only] == ["base_only/split1",
                                                              "base_only/split2"]


def test_method_arguments(tmp_path):
    config = _tiny_config(tmp_path)
    assert method_from_arg(f"mine={config}").name == "mine"
    assert method_from_arg(str(config)).name == "tiny"
    with pytest.raises(ValueError, match="expected one of"):
        method_from_arg("cosine")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        method_from_arg("x=nope.yaml")


def test_seed_shot_and_schedule_arguments():
    assert parse_seeds(["0-3", "7"]) == [0, 1, 2, 3, 7]
    with pytest.raises(ValueError, match="--seeds 'a-b'"):
        parse_seeds(["a-b"])
    assert parse_max_iter(["1=100", "10=900"]) == {1: 100, 10: 900}
    with pytest.raises(ValueError, match="SHOT=ITERATIONS"):
        parse_max_iter(["5:500"])
    cfg = load_config(str(COS), ["FEWSHOT.SHOT", 5])  # 100 iterations per shot, step at 80
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS) == (500, (400,))
    set_schedule(cfg, 1000)
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.CHECKPOINT_PERIOD) == \
        (1000, (800,), 1000)


def _record(run: Run, status="finished"):
    return {"status": status, "run": run.name, "method": run.method.name, "split": run.split,
            "shot": run.shot, "seed": run.seed, "output_dir": run.output_dir,
            "results": {"bbox": {"AP": 1.0}}}


def test_resume_skips_finished_runs_and_reruns_half_written_ones(tmp_path, monkeypatch):
    method = Method("m", "m", str(COS), "joint")
    runs = expand_grid(str(tmp_path), [method], [1], [1], [0, 1, 2, 3])
    finished, half, failed, fresh = runs
    for run, text in [(finished, json.dumps(_record(finished))),
                      (half, json.dumps(_record(half))[:40])]:
        Path(run.output_dir).mkdir(parents=True)
        (Path(run.output_dir) / "results.json").write_text(text)
    Path(failed.output_dir).mkdir(parents=True)
    (Path(failed.output_dir) / "failed.json").write_text(
        json.dumps({**_record(failed, "failed"), "error": "boom", "log": "l"}))
    assert finished_record(finished.output_dir) and not finished_record(half.output_dir)

    ran = []

    def fake_execute(job, **kwargs):
        ran.append(job.name)
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(job.output_dir) / "results.json").write_text(json.dumps(_record(job.run)))
        return _record(job.run)

    monkeypatch.setattr("dynnet_d2.engine.sweep.runner.execute_job", fake_execute)
    summary = run_sweep(str(tmp_path), runs, InProcessBackend(), progress=False)
    assert ran == [half.name, fresh.name]
    assert (summary["finished"], summary["failed"]) == (3, 1)
    assert summary["failures"][0]["error"] == "boom"
    ran.clear()
    summary = run_sweep(str(tmp_path), runs, InProcessBackend(), retry_failed=True,
                        progress=False)
    assert ran == [failed.name] and summary["failed"] == 0
    assert json.loads((tmp_path / "summary.json").read_text())["finished"] == 4


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    bad, good = expand_grid(str(tmp_path / "sweep"), [_joint(tmp_path, "bad"),
                                                      _joint(tmp_path, "good")], [1], [1], [0])
    runs = [Run(bad.method, 1, 1, 0, bad.output_dir, ("DATASETS.TRAIN", "('no_such_dataset',)")),
            good]
    backend = InProcessBackend()
    summary = run_sweep(str(tmp_path / "sweep"), runs, backend, progress=False,
                        redirect_output=False)
    assert backend.ran == ["bad/split1_1shot_seed0", "good/split1_1shot_seed0"]
    assert (summary["finished"], summary["failed"]) == (1, 1)
    failure = json.loads((Path(runs[0].output_dir) / "failed.json").read_text())
    assert "no_such_dataset" in failure["error"] and Path(failure["log"]).is_file()
    record = finished_record(runs[1].output_dir)
    assert record["cached"] is True and "bAP" in record["results"]["bbox"]
    assert (Path(runs[1].output_dir) / "config.yaml").is_file()
    assert not list(Path(runs[1].output_dir).glob("model_0*.pth"))  # only model_final.pth kept
    assert (Path(runs[1].output_dir) / "model_final.pth").is_file()


def test_execute_run_never_raises(tmp_path):
    run = Run(Method("x", "x", str(tmp_path / "missing.yaml"), "joint"), 1, 1, 0,
              str(tmp_path / "x" / "split1_1shot_seed0"))
    record = execute_run(run, redirect_output=False)
    assert record["status"] == "failed" and "missing.yaml" in record["error"]


def _exit_on_negative(item):
    """A worker function: a record, or the worker process killed for a negative item."""
    if item.seed < 0:
        os._exit(3)
    return {"status": "finished", "run": item.name}


def test_local_backend_survives_a_dying_worker(tmp_path):
    method = Method("m", "m", str(COS), "joint")
    items = [Run(method, 1, 1, seed, str(tmp_path / f"m/s{seed}")) for seed in (0, -1, 1, 2)]
    results = dict((item.seed, r) for item, r in LocalBackend(workers=1).map(
        _exit_on_negative, items))
    assert set(results) == {0, -1, 1, 2}
    assert "ended without a result" in results[-1]["error"]
    assert all(results[s]["status"] == "finished" for s in (0, 1, 2))


def test_submitit_local_backend_runs_two_jobs(tmp_path):
    backend = SubmititBackend(str(tmp_path / "jobs"), cluster="local",
                              parameters={"timeout_min": 5}, poll_s=0.2)
    items = ['{"status": "finished", "run": "a"}', '{"status": "finished", "run": "b"}',
             "not json"]
    results = {item: r for item, r in backend.map(json.loads, items)}
    assert results[items[0]]["run"] == "a" and results[items[1]]["run"] == "b"
    assert results["not json"]["status"] == "failed"
    assert "JSONDecodeError" in results["not json"]["error"]


def test_run_experiments_rejects_bad_arguments_before_running(tmp_path):
    for args, message in [(["--methods", "cosine"], "expected one of"),
                          (["--seeds", "99"], "shapes_train_all1_1shot_seed99"),
                          (["--opts", "SOLVER.NO_SUCH_KEY", "1"], "NO_SUCH_KEY")]:
        result = subprocess.run(
            [sys.executable, "tools/run_experiments.py", "--sweep-dir", str(tmp_path / "s"),
             "--shots", "1", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
    assert not (tmp_path / "s").exists()
