"""The benchmark arm runner (dynnet_d2/engine/arms.py): finished arms skipped, interrupted ones
resumed, failures recorded while the others go on, dependents of a failed arm not run, a
dependency's weights and derived options passed, the record rewritten after every arm, several
arms at once. A tiny script stands in for tools/train_net.py; one test runs the real one."""
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from dynnet_d2.engine import arms as runner
from dynnet_d2.engine.arms import Arm, check_arms, read_record, train_arms
from dynnet_d2.engine.runs import load_trained_model

REPO = Path(__file__).resolve().parents[2]
DIGITS = "configs/Classification/classifier_R8cifar_200it_digits.yaml"

# Stands in for tools/train_net.py: its "config" is a JSON of how to behave; it records its
# arguments, threads and the benchmark record as it found it in OUTPUT_DIR/call.json.
FAKE_TRAIN_NET = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path

    args = sys.argv[1:]
    config = args[args.index("--config-file") + 1]
    opts = [a for a in args[args.index("--config-file") + 2:] if not a.startswith("--")]
    options = dict(zip(opts[::2], opts[1::2]))
    out = Path(options["OUTPUT_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    record = Path(os.environ["FAKE_RECORD"])
    (out / "call.json").write_text(json.dumps({
        "args": args, "threads": os.environ.get("OMP_NUM_THREADS"),
        "record": json.loads(record.read_text()) if record.is_file() else None}))
    behaviour = json.loads(Path(config).read_text())
    if behaviour.get("fail"):
        sys.exit(3)
    if behaviour.get("wait_for"):  # succeeds only while the other arm runs at the same time
        (out / "started").write_text("")
        other = out.parent / behaviour["wait_for"] / "started"
        deadline = time.time() + 20
        while not other.is_file():
            if time.time() > deadline:
                sys.exit(4)
            time.sleep(0.05)
    (out / "model_final.pth").write_text(out.name)
    (out / "inference").mkdir(exist_ok=True)
    (out / "inference" / "results.json").write_text(json.dumps({"arm": out.name}))
""")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """``(configs, out)``: behaviour configs of the fake train_net, and the record file."""
    script = tmp_path / "fake_train_net.py"
    script.write_text(FAKE_TRAIN_NET)
    monkeypatch.setattr(runner, "TRAIN_NET", script)
    out = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(out))
    configs = {}
    for name, behaviour in {"ok": {}, "fail": {"fail": True}, "wait_a": {"wait_for": "b"},
                            "wait_b": {"wait_for": "a"}}.items():
        configs[name] = tmp_path / f"{name}.json"
        configs[name].write_text(json.dumps(behaviour))
    return configs, out


def call(work: Path, name: str):
    path = work / name / "call.json"
    return json.loads(path.read_text()) if path.is_file() else None


def test_finished_arms_are_skipped_and_interrupted_ones_resume(fake, tmp_path):
    configs, out = fake
    work = tmp_path / "work"
    for name in ("done", "done_unrecorded"):
        (work / name / "inference").mkdir(parents=True)
        (work / name / "inference" / "results.json").write_text('{"bbox": {"AP": 1.5}}')
    (work / "interrupted").mkdir()
    (work / "interrupted" / "last_checkpoint").write_text("model_0000004.pth")
    record = {"runs": {"done": {"wall_s": 12.5}}}
    table = {name: Arm(str(configs["ok"]), ["SEED", "1"])
             for name in ("done", "done_unrecorded", "interrupted", "fresh")}
    status = train_arms(table, work, record, out)
    assert status == dict.fromkeys(table, True)
    assert call(work, "done") is None and call(work, "done_unrecorded") is None
    assert record["runs"]["done"] == {"wall_s": 12.5}
    assert record["runs"]["done_unrecorded"] == {"skipped": "finished before",
                                                 "results": {"bbox": {"AP": 1.5}}}
    resumed, fresh = call(work, "interrupted")["args"], call(work, "fresh")["args"]
    assert "--resume" in resumed and "--resume" not in fresh
    assert fresh[fresh.index("--config-file") + 1:] == [
        str(configs["ok"]), "SEED", "1", "OUTPUT_DIR", str(work / "fresh")]
    assert call(work, "fresh")["threads"] == "2"
    assert record["runs"]["fresh"]["returncode"] == 0
    assert record["runs"]["fresh"]["results"] == {"arm": "fresh"}
    assert (work / "fresh" / "benchmark.log").is_file()


def test_a_failed_arm_is_recorded_its_dependents_not_run_and_the_others_go_on(fake, tmp_path):
    configs, out = fake
    work, ok = tmp_path / "work", str(configs["ok"])
    table = {"bad": Arm(str(configs["fail"])), "child": Arm(ok, after="bad"),
             "grandchild": Arm(ok, after="child"), "good": Arm(ok)}
    record = {"runs": {}}
    status = train_arms(table, work, record, out)
    assert status == {"bad": False, "child": False, "grandchild": False, "good": True}
    runs = read_record(out)["runs"]
    assert runs["bad"]["returncode"] == 3
    assert runs["bad"]["error"] == f"train_net exited with 3; see {work / 'bad' / 'benchmark.log'}"
    assert runs["child"] == {"error": "not run: bad failed"}
    assert runs["grandchild"] == {"error": "not run: child failed"}
    assert runs["good"]["results"] == {"arm": "good"}
    assert call(work, "child") is None and call(work, "grandchild") is None


def test_an_arm_that_raises_is_recorded_and_the_others_go_on(fake, tmp_path):
    configs, out = fake
    work, ok = tmp_path / "work", str(configs["ok"])

    def broken(folder):
        raise RuntimeError(f"cannot measure {folder.name}")

    table = {"sp": Arm(ok), "sdv": Arm(ok, after="sp", derived_opts=broken), "plain": Arm(ok)}
    record = {"runs": {}}
    assert train_arms(table, work, record, out) == {"sp": True, "sdv": False, "plain": True}
    assert record["runs"]["sdv"] == {"error": "RuntimeError: cannot measure sp"}


def test_a_dependency_trains_first_and_its_weights_and_derived_options_are_passed(fake,
                                                                                  tmp_path):
    configs, out = fake
    work, ok = tmp_path / "work", str(configs["ok"])
    seen = []

    def rate_of(folder: Path):  # reads what the finished dependency wrote
        seen.append(folder)
        return ["RATE", json.loads((folder / "inference" / "results.json").read_text())["arm"]]

    # listed before the arm it starts from: it still waits for it
    table = {"hrl": Arm(ok, ["DEPTH", "8"], after="sp", derived_opts=rate_of), "sp": Arm(ok)}
    assert train_arms(table, work, {"runs": {}}, out) == {"sp": True, "hrl": True}
    assert seen == [work / "sp"]
    args = call(work, "hrl")["args"]
    assert args[args.index("--config-file") + 2:] == [
        "DEPTH", "8", "MODEL.WEIGHTS", str(work / "sp" / "model_final.pth"), "RATE", "sp",
        "OUTPUT_DIR", str(work / "hrl")]


def test_the_record_is_rewritten_after_every_arm(fake, tmp_path):
    configs, out = fake
    work, ok = tmp_path / "work", str(configs["ok"])
    record = {"machine": {"cpu_count": 2}, "runs": {}}
    table = {name: Arm(ok) for name in ("first", "second", "third")}
    train_arms(table, work, record, out)
    # what each process found in the record file: every arm before it, complete JSON
    assert call(work, "first")["record"] is None
    assert list(call(work, "second")["record"]["runs"]) == ["first"]
    assert list(call(work, "third")["record"]["runs"]) == ["first", "second"]
    assert call(work, "third")["record"]["machine"] == {"cpu_count": 2}
    assert read_record(out) == record
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_arms_train_at_the_same_time_with_their_threads(fake, tmp_path):
    configs, out = fake
    work = tmp_path / "work"
    # each fake waits for the other to have started: both succeed only when run at once
    table = {"a": Arm(str(configs["wait_a"])), "b": Arm(str(configs["wait_b"]))}
    record = {"runs": {}}
    assert train_arms(table, work, record, out, workers=2, threads=1) == {"a": True, "b": True}
    assert call(work, "a")["threads"] == call(work, "b")["threads"] == "1"


def test_on_finished_adds_to_the_record_of_each_succeeded_arm_before_it_is_written(fake,
                                                                                   tmp_path):
    configs, out = fake
    work = tmp_path / "work"
    table = {"good": Arm(str(configs["ok"])), "bad": Arm(str(configs["fail"])),
             "later": Arm(str(configs["ok"]))}
    seen = []

    def on_finished(name, run):
        seen.append(name)
        run["note"] = f"kept {name}"

    train_arms(table, work, {"runs": {}}, out, on_finished=on_finished)
    assert seen == ["good", "later"]
    # the arm after "good" found the addition already in the written record
    assert call(work, "later")["record"]["runs"]["good"]["note"] == "kept good"
    runs = read_record(out)["runs"]
    assert runs["later"]["note"] == "kept later" and "note" not in runs["bad"]


@pytest.mark.parametrize("table,message", [
    ({"hrl": Arm("c.yaml", after="sp")}, r"arm 'hrl' starts from 'sp', which is not an arm"),
    ({"sdv": Arm("c.yaml", derived_opts=lambda folder: [])},
     r"arm 'sdv' derives options from the arm it starts from, but starts from none"),
    ({"a": Arm("c.yaml", after="b"), "b": Arm("c.yaml", after="a")},
     r"cycle: a -> b -> a"),
])
def test_a_bad_arm_table_is_an_error_before_anything_runs(tmp_path, table, message):
    with pytest.raises(ValueError, match=message):
        check_arms(table)
    with pytest.raises(ValueError, match=message):
        train_arms(table, tmp_path / "work", {"runs": {}}, tmp_path / "record.json")
    assert list(tmp_path.iterdir()) == []


def test_real_train_net_arms_start_from_their_dependency_and_are_skipped_once_done(tmp_path):
    work, out = tmp_path / "work", tmp_path / "record.json"
    short = ["MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", "5", "SOLVER.WARMUP_ITERS", "0",
             "SOLVER.CHECKPOINT_PERIOD", "100"]
    table = {"first": Arm(DIGITS, short),
             "second": Arm(DIGITS, short + ["SOLVER.BASE_LR", "1e-12"], after="first")}
    record = {"runs": {}}
    assert train_arms(table, work, record, out, threads=1) == {"first": True, "second": True}, (
        record)
    assert "classification" in record["runs"]["second"]["results"]
    # a learning rate of 1e-12: the second arm's final weights are the first arm's (a random
    # initialisation would differ by far more)
    first = load_trained_model(work / "first")[1].state_dict()
    second = load_trained_model(work / "second")[1].state_dict()
    weights = [k for k in first if k.endswith("weight")]
    assert weights and all(torch.allclose(first[k], second[k], atol=1e-6) for k in weights)
    again = {"runs": {}}
    assert train_arms(table, work, again, out, threads=1) == {"first": True, "second": True}
    assert again["runs"] == {name: {"skipped": "finished before",
                                    "results": record["runs"][name]["results"]}
                             for name in ("first", "second")}
    assert sys.executable in record["runs"]["first"]["command"]
