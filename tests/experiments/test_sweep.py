"""Few-shot sweeps: the grid, resuming (finished runs skipped, half-written or unreadable ones
rerun), failures recorded without stopping the sweep, base models named or described before
anything trains, schedules, one log line per record, the local and submitit backends, the command
line (bad arguments, unwritable folders, Ctrl-C)."""
import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dynnet_d2.config import load_config
from dynnet_d2.engine import DynnetCheckpointer, DynnetTrainer, fewshot_methods
from dynnet_d2.engine.fewshot_methods import FewShotBase
from dynnet_d2.experiments.sweep import (
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
from dynnet_d2.experiments.sweep.cli import (
    check_runs,
    parse_and_check,
    parse_max_iter,
    parse_seeds,
)
from dynnet_d2.experiments.sweep.execute import describe_schedule, set_schedule

REPO = Path(__file__).resolve().parents[2]
TFA = REPO / "configs" / "TFA"
COS = TFA / "faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"
BASE = TFA / "faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"


@pytest.fixture(scope="module")
def frozen_weights(tmp_path_factory):
    """A random tiny detector of the fine-tuning configs, as a checkpoint: the frozen parts of
    :func:`_tiny_config` load from it."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = DynnetTrainer.build_model(load_config(str(COS), ["FEWSHOT.SHOT", 1,
                                                             "MODEL.DEVICE", "cpu"]))
    DynnetCheckpointer(model, str(folder)).save("random_model")
    return str(folder / "random_model.pth")


@pytest.fixture(scope="module")
def base_weights(tmp_path_factory):
    """A random base model of split 1 (15 classes), saved as training saves model_final.pth."""
    folder = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    model = DynnetTrainer.build_model(load_config(str(BASE), ["MODEL.DEVICE", "cpu"]))
    DynnetCheckpointer(model, str(folder)).save("model_final", iteration=299)
    return str(folder / "model_final.pth")


def _tiny_config(tmp_path, name="tiny", weights="") -> Path:
    """A fine-tuning config that trains 2 iterations of a random, frozen tiny detector
    (``weights``; no base model needed), as a "joint" method."""
    lines = [f'_BASE_: "{COS}"', 'MODEL:', f'  WEIGHTS: "{weights}"', '  DEVICE: "cpu"',
             '  ROI_HEADS:', '    SCORE_THRESH_TEST: 0.0',
             'INPUT:', '  MIN_SIZE_TRAIN: (96,)', '  MIN_SIZE_TEST: 96',
             'DATASETS:', '  CHECK_IMAGES: False']
    lines += ['SOLVER:', '  IMS_PER_BATCH: 2', '  MAX_ITER: 2', '  STEPS: (1,)',
              '  CHECKPOINT_PERIOD: 2', 'DATALOADER:', '  NUM_WORKERS: 0']
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _joint(tmp_path, name="tiny", weights="") -> Method:
    return Method(name, name, str(_tiny_config(tmp_path, name, weights)), "joint")


@contextlib.contextmanager
def _log_lines(name="dynnet_d2.experiments.sweep"):
    """The messages logged to ``name`` and below meanwhile (whether or not they propagate)."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield lines
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


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


def test_the_schedule_says_whether_it_is_per_shot_or_total(tmp_path):
    """A SOLVER.MAX_ITER in --opts of a per-shot config is per shot; --max-iter is the total."""
    cos = method_from_arg("cos")
    per_shot, total, base_only = [
        Run(cos, 1, 5, 0, str(tmp_path / "cos/split1_5shot_seed0"), ("SOLVER.MAX_ITER", 30)),
        Run(cos, 1, 5, 0, str(tmp_path / "cos/split1_5shot_seed0"), (), 80),
        expand_grid(str(tmp_path), [method_from_arg("base_only")], [1], [1], [0])[0]]
    assert check_runs([per_shot, base_only]) == [
        "Schedule of cos, 5 shot(s): SOLVER.MAX_ITER 150 iterations = 30 per shot x 5 shot(s) (a "
        "per-shot config, FEWSHOT.SCHEDULE_PER_SHOT: a SOLVER.MAX_ITER override is per shot too; "
        "SOLVER.STEPS (400,)); --max-iter K=N sets the total",
        "Schedule of base_only: evaluation only (no training)"]
    assert check_runs([total])[0].startswith("Schedule of cos, 5 shot(s): 80 iterations in total "
                                             "(--max-iter 5=80; SOLVER.STEPS (64,)")
    base = Run(Method("base", "Base training", str(BASE), "base"), 1, 0, 0, str(tmp_path / "b"))
    cfg = load_config(str(BASE), ["FEWSHOT.SPLIT", 1])
    assert describe_schedule(base, cfg) == ("SOLVER.MAX_ITER 2800 iterations (of "
                                            "faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml)")


def _record(run: Run, status="finished"):
    return {"status": status, "run": run.name, "method": run.method.name, "split": run.split,
            "shot": run.shot, "seed": run.seed, "output_dir": run.output_dir,
            "results": {"bbox": {"AP": 1.0}}}


def test_resume_skips_finished_runs_and_reruns_half_written_ones(tmp_path, monkeypatch):
    method = Method("m", "m", str(COS), "joint")
    runs = expand_grid(str(tmp_path), [method], [1], [1], [0, 1, 2, 3, 4, 5, 6])
    finished, half, failed, fresh, listed, failed_list, failed_cut = runs
    for run, name, text in [(finished, "results.json", json.dumps(_record(finished))),
                            (half, "results.json", json.dumps(_record(half))[:40]),
                            (listed, "results.json", "[1]"),
                            (failed_list, "failed.json", "[1]"),
                            (failed_cut, "failed.json", '{"status": "fa')]:
        Path(run.output_dir).mkdir(parents=True)
        (Path(run.output_dir) / name).write_text(text)
    Path(failed.output_dir).mkdir(parents=True)
    (Path(failed.output_dir) / "failed.json").write_text(
        json.dumps({**_record(failed, "failed"), "error": "boom", "log": "l"}))
    assert finished_record(finished.output_dir) and not finished_record(half.output_dir)
    assert not finished_record(listed.output_dir)  # valid JSON, but not a record

    ran = []

    def fake_execute(job, **kwargs):
        ran.append(job.name)
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(job.output_dir) / "results.json").write_text(json.dumps(_record(job.run)))
        return _record(job.run)

    monkeypatch.setattr("dynnet_d2.experiments.sweep.runner.execute_job", fake_execute)
    with _log_lines() as logged:
        summary = run_sweep(str(tmp_path), runs, InProcessBackend(), progress=False)
    assert ran == [half.name, fresh.name, listed.name, failed_list.name, failed_cut.name]
    assert (summary["finished"], summary["failed"]) == (6, 1)
    assert summary["failures"][0]["error"] == "boom"
    assert sum("counts as not finished" in line for line in logged) == 4
    assert any("m/split1_1shot_seed4/results.json holds a JSON list" in line for line in logged)
    ran.clear()
    summary = run_sweep(str(tmp_path), runs, InProcessBackend(), retry_failed=True,
                        progress=False)
    assert ran == [failed.name] and summary["failed"] == 0
    assert json.loads((tmp_path / "summary.json").read_text())["finished"] == 7


def test_a_named_base_model_is_used_and_said_before_anything_trains(tmp_path, monkeypatch,
                                                                     base_weights):
    jobs = []

    def fake_execute(job, **kwargs):
        jobs.append(job)
        return _record(job.run)

    monkeypatch.setattr("dynnet_d2.experiments.sweep.runner.execute_job", fake_execute)
    runs = expand_grid(str(tmp_path / "sweep"), [method_from_arg("cos"),
                                                 method_from_arg("base_only")], [1], [1], [0])
    backend = InProcessBackend()
    with _log_lines() as logged:
        run_sweep(str(tmp_path / "sweep"), runs, backend, base_weights={1: base_weights},
                  progress=False)
    assert backend.ran == [r.name for r in runs]  # no base training
    surgery = str(Path(base_weights).parent / "model_reset_surgery.pth")
    assert [job.weights for job in jobs] == [surgery, surgery]
    assert logged[0] == (f"Split 1: base model {base_weights} (--base-weights; trained 300 "
                         f"iterations)")

    # Without it: the base config's folder, trained there with its own schedule.
    config = tmp_path / "base.yaml"
    config.write_text(f'_BASE_: "{BASE}"\nOUTPUT_DIR: "{tmp_path / "base"}"\n')
    monkeypatch.setattr("dynnet_d2.experiments.sweep.runner._execute",
                        lambda *a: pytest.fail("trained"))
    with _log_lines() as logged, pytest.raises(pytest.fail.Exception, match="trained"):
        run_sweep(str(tmp_path / "sweep"), runs, backend, base_config=str(config),
                  progress=False)
    assert logged[0].startswith(f"Split 1: training the base model of {config} in "
                                f"{tmp_path / 'base'}: 2800 iterations (the base config's "
                                f"schedule")
    assert "--max-iter and --opts apply to the fine-tuning runs only" in logged[0]


def test_each_method_starts_from_the_base_it_names(tmp_path, monkeypatch):
    # two declared bases with their own configs and preparation; a method of each
    bases = {}
    for name in ("a", "b"):
        config = tmp_path / f"base_{name}.yaml"
        config.write_text(f'_BASE_: "{BASE}"\nOUTPUT_DIR: "{tmp_path / ("base_" + name)}"\n')
        bases[name] = FewShotBase(str(config), lambda ckpt, b, a, n=name: f"{ckpt}+{n}",
                                  lambda *args: None)
        monkeypatch.setitem(fewshot_methods._BASES, name, bases[name])
    methods = [Method("ma", "ma", str(COS), "finetune", base="a"),
               Method("mb", "mb", str(COS), "finetune", base="b")]
    jobs = []

    def fake_execute(job, **kwargs):
        jobs.append(job)
        return _record(job.run)

    monkeypatch.setattr("dynnet_d2.experiments.sweep.runner.execute_job", fake_execute)
    runs = expand_grid(str(tmp_path / "sweep"), methods, [1], [1], [0])
    with _log_lines() as logged:
        run_sweep(str(tmp_path / "sweep"), runs, InProcessBackend(), progress=False)
    trained = [job.output_dir for job in jobs if job.run.method.kind == "base"]
    assert trained == [str(tmp_path / "base_a"), str(tmp_path / "base_b")]
    weights = {job.run.method.name: job.weights for job in jobs
               if job.run.method.kind == "finetune"}
    assert weights == {"ma": f"{tmp_path / 'base_a' / 'model_final.pth'}+a",
                       "mb": f"{tmp_path / 'base_b' / 'model_final.pth'}+b"}
    assert logged[0].startswith(f"Split 1 (a): training the base model of {tmp_path}")
    assert logged[1].startswith(f"Split 1 (b): training the base model of {tmp_path}")


def test_finished_runs_need_no_base_model_so_a_sweep_kept_as_records_trains_none(tmp_path,
                                                                                 monkeypatch):
    for name in ("a", "b"):
        config = tmp_path / f"base_{name}.yaml"
        config.write_text(f'_BASE_: "{BASE}"\nOUTPUT_DIR: "{tmp_path / ("base_" + name)}"\n')
        monkeypatch.setitem(fewshot_methods._BASES, name, FewShotBase(
            str(config), lambda ckpt, b, a: ckpt, lambda *args: None))
    methods = [Method("ma", "ma", str(COS), "finetune", base="a"),
               Method("mb", "mb", str(COS), "finetune", base="b")]
    runs = expand_grid(str(tmp_path / "sweep"), methods, [1], [1], [0, 1])
    for run in runs[:2]:  # every run of "ma" finished; its base model is gone
        Path(run.output_dir).mkdir(parents=True)
        (Path(run.output_dir) / "results.json").write_text(json.dumps(_record(run)))
    jobs = []

    def fake_execute(job, **kwargs):
        jobs.append(job)
        Path(job.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(job.output_dir) / "results.json").write_text(json.dumps(_record(job.run)))
        return _record(job.run)

    monkeypatch.setattr("dynnet_d2.experiments.sweep.runner.execute_job", fake_execute)
    with _log_lines() as logged:
        summary = run_sweep(str(tmp_path / "sweep"), runs, InProcessBackend(), progress=False)
    assert [job.output_dir for job in jobs] == [str(tmp_path / "base_b")] + [
        r.output_dir for r in runs[2:]]
    assert len(logged) >= 1 and logged[0].startswith("Split 1 (b): training the base model")
    assert not any("(a)" in line for line in logged)
    assert summary["finished"] == 4
    jobs.clear()
    (tmp_path / "base_b" / "results.json").unlink()  # the base model gone too: nothing to train
    summary = run_sweep(str(tmp_path / "sweep"), runs, InProcessBackend(), progress=False)
    assert jobs == [] and (summary["finished"], summary["ran_now"]) == (4, 0)


def test_a_base_only_record_of_the_cosine_head_is_evaluated_again(tmp_path, monkeypatch,
                                                                   base_weights):
    """Base-only used to run the FC-trained predictor through the cosine head."""
    run = expand_grid(str(tmp_path), [method_from_arg("base_only")], [1], [1], [0])[0]
    Path(run.output_dir).mkdir(parents=True)
    (Path(run.output_dir) / "results.json").write_text(json.dumps(_record(run)))
    (Path(run.output_dir) / "config.yaml").write_text(
        "MODEL:\n  ROI_HEADS:\n    OUTPUT_LAYER: CosineSimOutputLayers\n")
    ran = []
    monkeypatch.setattr("dynnet_d2.experiments.sweep.runner.execute_job",
                        lambda job, **kwargs: ran.append(job.name) or _record(job.run))
    run_sweep(str(tmp_path), [run], InProcessBackend(), base_weights={1: base_weights},
              progress=False)
    assert ran == ["base_only/split1"]
    (Path(run.output_dir) / "config.yaml").write_text(
        "MODEL:\n  ROI_HEADS:\n    OUTPUT_LAYER: FastRCNNOutputLayers\n")
    run_sweep(str(tmp_path), [run], InProcessBackend(), base_weights={1: base_weights},
              progress=False)
    assert ran == ["base_only/split1"]  # now reused


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, frozen_weights):
    bad, blind, nothing_fits, good = expand_grid(
        str(tmp_path / "sweep"), [_joint(tmp_path, name, frozen_weights)
                                  for name in ("bad", "blind", "nothing_fits", "good")],
        [1], [1], [0])
    classifier = tmp_path / "classifier.pth"
    torch.save({"model": torch.nn.Linear(4, 10).state_dict()}, classifier)
    runs = [Run(bad.method, 1, 1, 0, bad.output_dir, ("DATASETS.TRAIN", "('no_such_dataset',)")),
            Run(blind.method, 1, 1, 0, blind.output_dir,
                ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", 1.0)),  # no detection at all: all NaN
            Run(nothing_fits.method, 1, 1, 0, nothing_fits.output_dir,
                ("MODEL.WEIGHTS", str(classifier))),
            good]
    backend = InProcessBackend()
    summary = run_sweep(str(tmp_path / "sweep"), runs, backend, progress=False,
                        redirect_output=False)
    assert backend.ran == [r.name for r in runs]
    assert (summary["finished"], summary["failed"]) == (1, 3)
    failure = json.loads((Path(runs[0].output_dir) / "failed.json").read_text())
    assert "no_such_dataset" in failure["error"] and Path(failure["log"]).is_file()
    failure = json.loads((Path(runs[1].output_dir) / "failed.json").read_text())
    assert "every metric is undefined" in failure["error"]
    assert not (Path(runs[1].output_dir) / "results.json").exists()
    failure = json.loads((Path(runs[2].output_dir) / "failed.json").read_text())
    assert "backbone (MODEL.BACKBONE.FREEZE): " in failure["error"]
    assert not (Path(runs[2].output_dir) / "model_final.pth").exists()  # nothing trained
    record = finished_record(runs[3].output_dir)
    assert record["cached"] is True and "bAP" in record["results"]["bbox"]
    assert (Path(runs[3].output_dir) / "config.yaml").is_file()
    assert not list(Path(runs[3].output_dir).glob("model_0*.pth"))  # only model_final.pth kept
    assert (Path(runs[3].output_dir) / "model_final.pth").is_file()
    assert ("Run good/split1_1shot_seed0: SOLVER.MAX_ITER 2 iterations = 2 per shot x 1 shot(s)"
            in (Path(runs[3].output_dir) / "log.txt").read_text())


def _trained_weights(run: Run) -> dict:
    return torch.load(Path(run.output_dir) / "model_final.pth", map_location="cpu")["model"]


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "full_model"])
def test_a_run_is_seeded_by_its_seed_and_gives_the_same_weights_again(tmp_path, frozen_weights,
                                                                        cached):
    method = _joint(tmp_path, "good", frozen_weights)
    opts = ("FEWSHOT.CACHE.ENABLED", cached)
    first, again = (Run(method, 1, 1, 0, str(tmp_path / name / "run"), opts)
                    for name in ("a", "b"))  # cached: the second finds the first's caches
    chosen = Run(method, 1, 1, 0, str(tmp_path / "c" / "run"), opts + ("SEED", 5))
    for state, run in enumerate((first, again, chosen)):
        torch.manual_seed(100 + state)  # whatever state the worker was left in
        assert execute_run(run, redirect_output=False)["status"] == "finished"
    assert [load_config(str(Path(run.output_dir) / "config.yaml")).SEED
            for run in (first, chosen)] == [0, 5]  # the overrides' SEED wins over the run's
    weights, same = _trained_weights(first), _trained_weights(again)
    assert weights.keys() == same.keys()
    assert all(torch.equal(weights[k], same[k]) for k in weights)
    other = _trained_weights(chosen)  # the same K-shot set, another SEED
    assert any(not torch.equal(weights[k], other[k]) for k in weights)


def test_execute_run_never_raises(tmp_path):
    run = Run(Method("x", "x", str(tmp_path / "missing.yaml"), "joint"), 1, 1, 0,
              str(tmp_path / "x" / "split1_1shot_seed0"))
    record = execute_run(run, redirect_output=False)
    assert record["status"] == "failed" and "missing.yaml" in record["error"]
    (tmp_path / "a_file").write_text("")  # a run folder that cannot be created
    unwritable = Run(run.method, 1, 1, 0, str(tmp_path / "a_file" / "x" / "split1_1shot_seed0"))
    record = execute_run(unwritable, redirect_output=False)
    assert record["status"] == "failed" and "a_file" in record["error"]


LOG_ONCE = """
import logging, sys
from pathlib import Path
import lvis  # noqa: F401 - installs a root console handler when imported, as in the workers
from dynnet_d2.experiments.sweep.execute import run_logging
from dynnet_d2.utils.logger import setup_logger
for setup in (False, True):
    if setup:
        setup_logger()  # Detectron2's console handlers, not propagating to the root
    with run_logging(Path(sys.argv[1]) / f"log{int(setup)}.txt", redirect_output=True):
        logging.getLogger("dynnet_d2.engine.x").info("from dynnet_d2")
        logging.getLogger("detectron2.y").info("from detectron2")
        logging.getLogger("fvcore.z").warning("from fvcore")
        print("printed", flush=True)
"""


def test_every_line_of_a_run_log_appears_once(tmp_path):
    result = subprocess.run([sys.executable, "-c", LOG_ONCE, str(tmp_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("log0.txt", "log1.txt"):
        text = (tmp_path / name).read_text()
        for message in ("from dynnet_d2", "from detectron2", "from fvcore", "printed"):
            assert text.count(message) == 1, (name, text)
        assert "dynnet_d2.engine.x INFO]: from dynnet_d2" in text  # one format
    assert "from dynnet_d2" not in result.stdout + result.stderr


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
    (tmp_path / "a_file").write_text("")
    for args, message in [(["--methods", "cosine"], "expected one of"),
                          (["--seeds", "99"], "shapes_train_all1_1shot_seed99"),
                          (["--opts", "SOLVER.NO_SUCH_KEY", "1"], "NO_SUCH_KEY"),
                          (["--sweep-dir", str(tmp_path / "a_file" / "s")],
                           f"--sweep-dir='{tmp_path / 'a_file' / 's'}' is not a writable "
                           f"directory")]:
        result = subprocess.run(
            [sys.executable, "tools/run_experiments.py", "--sweep-dir", str(tmp_path / "s"),
             "--shots", "1", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()


def test_base_weights_arguments_are_checked_before_running(tmp_path, base_weights):
    surgery_like = tmp_path / "model_reset_surgery.pth"
    torch.save({"model": {"roi_heads.box_predictor.cls_score.weight": torch.zeros(21, 4)}},
               surgery_like)
    for args, error, message in [
            (["2=x.pth"], ValueError, "split 2 is not among --splits 1"),
            (["1:x.pth"], ValueError, "expected SPLIT=CHECKPOINT"),
            (["1=nope.pth"], FileNotFoundError, "'nope.pth' does not exist"),
            ([f"1={surgery_like}"], ValueError, "21 score rows, but a base model of split 1 "
                                                "scores the 15 classes of shapes_train_base1")]:
        with pytest.raises(error, match=message):
            parse_and_check(argparse.ArgumentParser(), [
                "--sweep-dir", str(tmp_path / "s"), "--shots", "1", "--seeds", "0",
                "--base-weights", *args])
    plan = parse_and_check(argparse.ArgumentParser(), [
        "--sweep-dir", str(tmp_path / "s"), "--shots", "1", "--seeds", "0", "--methods", "cos",
        "--base-weights", f"1={base_weights}"])
    assert plan.base_weights == {1: base_weights}


@pytest.mark.parametrize("stop", ["ctrl-c", "kill"])
def test_ctrl_c_or_sigterm_ends_the_sweep_and_its_workers_with_code_130(tmp_path, stop):
    config = tmp_path / "base.yaml"  # a long base training of the tiny detector
    config.write_text(f'_BASE_: "{BASE}"\nMODEL:\n  DEVICE: "cpu"\n  WEIGHTS: ""\n'
                      f'INPUT:\n  MIN_SIZE_TRAIN: (64,)\nSOLVER:\n  MAX_ITER: 100000\n'
                      f'DATALOADER:\n  NUM_WORKERS: 0\nOUTPUT_DIR: "{tmp_path / "base"}"\n')
    sweep = subprocess.Popen(
        [sys.executable, "tools/run_experiments.py", "--sweep-dir", str(tmp_path / "s"),
         "--shots", "1", "--seeds", "0", "--methods", "cos", "--base-config", str(config),
         "--workers", "1", "--threads", "1"], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        # as from a terminal: a test run started in the background (`make test &`) ignores
        # SIGINT, and its children would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = tmp_path / "base" / "log.txt"
    deadline = time.monotonic() + 240
    while not log.is_file() and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.5)
    if not log.is_file():
        os.killpg(sweep.pid, signal.SIGKILL)
        pytest.fail(f"the base training never started: {sweep.communicate()[1][-3000:]}")
    time.sleep(2)  # the worker is inside the base training
    if stop == "ctrl-c":
        os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        os.kill(sweep.pid, signal.SIGTERM)  # `kill PID`, a scheduler's limit: the sweep alone
    try:
        _, stderr = sweep.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(sweep.pid, signal.SIGKILL)  # leave nothing running for the other tests
        _, stderr = sweep.communicate()
        pytest.fail(f"the sweep did not end within 120 s of the {stop}; its stderr: "
                    f"{stderr[-3000:]}; the run's log: {log.read_text()[-3000:]}")
    assert sweep.returncode == 130, stderr[-3000:]
    assert "interrupted; run the same command again to resume" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    deadline = time.monotonic() + 30  # the worker ended too (its zombie reaped by init)
    while time.monotonic() < deadline:
        try:
            os.killpg(sweep.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("a process of the sweep is still running")
    assert "leaked" not in stderr  # the worker exited cleanly


def test_the_sweep_never_blocks_on_its_workers_longer_than_the_poll(monkeypatch):
    """A Ctrl-C delivered to another thread is handled only when the main thread runs Python
    again: the local backend waits on its workers in steps of POLL_S, in completion order."""
    import concurrent.futures as futures

    from dynnet_d2.experiments.sweep import backends

    timeouts = []
    wait = futures.wait
    monkeypatch.setattr(backends.futures, "wait",
                        lambda fs, timeout, return_when: timeouts.append(timeout) or wait(
                            fs, timeout=timeout, return_when=return_when))
    with futures.ThreadPoolExecutor(2) as pool:
        slow, fast = pool.submit(time.sleep, 1.2), pool.submit(time.sleep, 0.1)
        assert list(backends._completed({slow: "slow", fast: "fast"})) == [fast, slow]
    assert len(timeouts) >= 3 and set(timeouts) == {backends.POLL_S}
