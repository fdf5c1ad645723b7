"""The ShapeProp benchmark's arm selection (dynnet_d2/methods/shapeprop/benchmark.py): a suite
restricted to some seeds, and arms whose evaluation the record holds from the same config and
options not trained again although their folders are gone; the cost table."""
from dynnet_d2.methods.shapeprop import benchmark


def test_seeds_select_the_suite_arms_of_those_seeds_on_the_schedule():
    arms = benchmark.training_arms(benchmark.SUITES["main"], 2800, seeds={1})
    assert sorted(arms) == ["maskrcnn_base1_seed1", "maskrcnn_head4x96_base1_seed1",
                            "shapeprop_base1_seed1"]
    opts = arms["shapeprop_base1_seed1"].opts
    assert opts[:2] == ["SEED", "1"]
    assert opts[-4:] == ["SOLVER.MAX_ITER", "2800", "SOLVER.STEPS", "(2200, 2600)"]
    # the first version with seed 0 only
    assert len(benchmark.training_arms(benchmark.SUITES["main"], 2800)) == 10


def test_recorded_arms_are_not_trained_again_and_the_others_are_recorded_with_their_arm(
        tmp_path, monkeypatch):
    suite = benchmark.SUITES["main"]
    arms = benchmark.training_arms(suite, 2800, seeds={0})
    done = "maskrcnn_base1_seed0"
    same = {"config": arms[done].config, "opts": list(arms[done].opts)}
    other_schedule = dict(same, opts=list(benchmark.training_arms(suite, 1200)[done].opts))
    trained = []

    def fake_train_arms(table, work, record, out, *, workers, threads, on_finished):
        trained.append((sorted(table), workers, threads))
        for name in table:
            folder = work / name / "inference"
            folder.mkdir(parents=True)
            (folder / "results.json").write_text('{"segm": {"AP": 1.5}}')
            record["runs"][name] = {"returncode": 0}
            on_finished(name, record["runs"][name])

    monkeypatch.setattr(benchmark, "train_arms", fake_train_arms)
    record = {"runs": {done: {"arm": same, "results": {"segm": {"AP": 9.0}}},
                       # a record of another schedule, or without results, is trained again
                       "maskrcnn_head4x96_base1_seed0": {"arm": other_schedule,
                                                         "results": {}},
                       "shapeprop_base1_seed0": {"arm": {}, "error": "exited with 1"}}}
    benchmark.train_and_evaluate(suite, tmp_path / "work", record, tmp_path / "out.json", 2800,
                                 seeds={0}, workers=2, threads=1)
    assert trained == [(["maskrcnn_head4x96_base1_seed0", "shapeprop_base1_seed0",
                         "shapeprop_first_base1_seed0"], 2, 1)]
    assert record["runs"][done]["results"] == {"segm": {"AP": 9.0}}
    first = record["runs"]["shapeprop_first_base1_seed0"]
    assert first["results"] == {"segm": {"AP": 1.5}}
    assert first["arm"] == {"config": benchmark.SHAPEPROP,
                            "opts": list(arms["shapeprop_first_base1_seed0"].opts)}
    # so that the next run skips them all
    trained.clear()
    benchmark.train_and_evaluate(suite, tmp_path / "work2", record, tmp_path / "out.json",
                                 2800, seeds={0})
    assert trained == [([], 2, 1)]


def test_cost_table_has_both_roialign_backwards_with_their_ratios():
    base, sp = "maskrcnn_base1_seed0", "shapeprop_base1_seed0"
    cost = {"inference": {"images": 10, base: {"ms_per_image": 50.0}, sp: {"ms_per_image": 60.0}},
            "train": {"iterations": 4, "rounds": 3, base: {"s_per_iter": 0.5},
                      sp: {"s_per_iter": 0.8}, f"{base}/torchvision": {"s_per_iter": 0.6},
                      f"{sp}/torchvision": {"s_per_iter": 1.2}}}
    lines = benchmark.cost_table(cost, {})
    assert "| inference, ms/image (batch 1, 10 images) | 50.0 | 60.0 | 1.20x |" in lines
    assert "| training, s/iter (same process, 4 batches) | 0.5 | 0.8 | 1.60x |" in lines
    assert ("| training, s/iter with torchvision's ROIAlign backward (same process) | 0.6 | 1.2 "
            "| 2.00x |") in lines
