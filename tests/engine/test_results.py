import json
import math

from dynnet_d2.engine.results import write_results


def test_single_dataset_results_and_nan(tmp_path):
    paths = write_results(str(tmp_path), {"bbox": {"AP": 50.0, "AP-x": math.nan}}, ["ds"])
    data = json.loads(open(paths["primary"]).read())
    assert data == {"bbox": {"AP": 50.0, "AP-x": None}}
    assert paths["primary"] == str(tmp_path / "inference" / "results.json")
    assert json.loads(open(paths["ds"]).read()) == data


def test_several_datasets_primary_is_first(tmp_path):
    results = {"a": {"bbox": {"AP": 1.0}}, "b": {"bbox": {"AP": 2.0}}}
    paths = write_results(str(tmp_path), results, ["a", "b"])
    assert json.loads(open(paths["primary"]).read()) == {"bbox": {"AP": 1.0}}
    assert (json.loads(open(tmp_path / "inference" / "b" / "results.json").read())
            == {"bbox": {"AP": 2.0}})
