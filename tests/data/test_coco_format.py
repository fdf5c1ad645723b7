"""User COCO datasets: validation errors name the file and the key; a valid one trains the loader."""
import json

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from dynnet_d2.data import DatasetFormatError, register_coco_json_dataset, validate_coco_json
from dynnet_d2.data.coco_format import register_from_config

VALID = {
    "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 20}],
    "annotations": [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4], "area": 16,
                     "iscrowd": 0}],
    "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
}


def _write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_valid_json_registers_with_contiguous_classes(tmp_path):
    register_coco_json_dataset("user_ds", _write(tmp_path, VALID), str(tmp_path))
    dicts = DatasetCatalog.get("user_ds")
    assert len(dicts) == 1 and dicts[0]["annotations"][0]["category_id"] == 0
    assert MetadataCatalog.get("user_ds").thing_classes == ["cat", "dog"]
    assert MetadataCatalog.get("user_ds").evaluator_type == "coco"


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.pop("annotations"), "missing COCO key 'annotations'"),
    (lambda d: d["images"][0].pop("height"), r"images\[0\] lacks required key\(s\) \['height'\]"),
    (lambda d: d["annotations"][0].update(category_id=9), "unknown category_id 9"),
    (lambda d: d["annotations"][0].update(image_id=2), "image_id 2"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2]), r"expected \[x, y, width, height\]"),
])
def test_not_coco_errors_name_file_and_key(tmp_path, mutate, match):
    data = json.loads(json.dumps(VALID))
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(DatasetFormatError, match=match) as e:
        validate_coco_json(path)
    assert path in str(e.value)


def test_non_json_and_non_object_and_missing_file(tmp_path):
    with pytest.raises(DatasetFormatError, match="not a JSON file"):
        validate_coco_json(_write(tmp_path, "images: []"))
    with pytest.raises(DatasetFormatError, match="got a list"):
        validate_coco_json(_write(tmp_path, [1, 2]))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        validate_coco_json(str(tmp_path / "nope.json"))


def test_config_entries_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"COCO_JSON_DATASETS\[0\]"):
        register_from_config([("only_name", "x.json")])
    with pytest.raises(FileNotFoundError, match="image_root"):
        register_from_config([("ds", _write(tmp_path, VALID), str(tmp_path / "missing"))])
