"""User COCO datasets: validation errors name the file and the key; the JSON is read once and
gives exactly what Detectron2's own loader gives."""
import copy
import json

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from dynnet_d2.data import (
    DatasetFormatError,
    coco_format,
    read_coco_json,
    register_coco_json_dataset,
)
from dynnet_d2.data.from_config import register_from_entries
from dynnet_d2.data.synthetic import coco_json_path, image_root

VALID = {
    "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 20}],
    "annotations": [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4], "area": 16,
                     "iscrowd": 0}],
    "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
}
# Every conversion load_coco_json does: unsorted categories and images, crowd boxes, an invalid
# polygon next to a valid one, an instance whose only polygon is invalid (dropped), uncompressed
# and compressed RLE, keypoints, and an image without annotations.
EDGE_CASES = {
    "images": [{"id": 9, "file_name": "b.jpg", "height": 8, "width": 6},
               {"id": 2, "file_name": "sub/a.jpg", "height": 10, "width": 20},
               {"id": 4, "file_name": "c.jpg", "height": 5, "width": 5}],
    "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    "annotations": [
        {"id": 1, "image_id": 2, "category_id": 7, "bbox": [1.5, 2, 4, 3], "iscrowd": 0,
         "segmentation": [[1, 2, 5, 2, 5, 5], [1, 1, 2, 2]], "area": 6},
        {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 3, 3], "iscrowd": 0,
         "segmentation": [[1, 1, 2, 2]]},
        {"id": 3, "image_id": 9, "category_id": 3, "bbox": [0, 0, 2, 3], "iscrowd": 1,
         "segmentation": {"size": [8, 6], "counts": [0, 3, 5, 3, 37]}},
        {"id": 4, "image_id": 9, "category_id": 7, "bbox": [1, 1, 3, 3], "iscrowd": 0,
         "keypoints": [1, 2, 2, 3, 4, 1]},
    ],
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


@pytest.mark.parametrize("data", [EDGE_CASES, None], ids=["edge_cases", "shapes_val"])
def test_dicts_equal_detectron2_load_coco_json(tmp_path, data):
    json_file = _write(tmp_path, data) if data else str(coco_json_path("val"))
    root = str(tmp_path) if data else str(image_root())
    register_coco_json_dataset("ours_ds", json_file, root)
    ours = DatasetCatalog.get("ours_ds")
    reference_name = f"reference_{tmp_path.name}"
    reference = load_coco_json(json_file, root, dataset_name=reference_name)
    assert ours == reference
    assert (MetadataCatalog.get("ours_ds").thing_classes
            == MetadataCatalog.get(reference_name).thing_classes)


def test_json_is_read_once_for_registration_and_loading(tmp_path, monkeypatch):
    path = _write(tmp_path, VALID)
    reads = []
    original = coco_format.read_coco_json
    monkeypatch.setattr(coco_format, "read_coco_json", lambda f: reads.append(f) or original(f))
    register_coco_json_dataset("read_once_ds", path, str(tmp_path))
    assert len(DatasetCatalog.get("read_once_ds")) == 1
    assert reads == [path]
    DatasetCatalog.get("read_once_ds")  # a later load (e.g. evaluation after training) reads again
    assert reads == [path, path]


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.pop("annotations"), "missing COCO key 'annotations'"),
    (lambda d: d["images"][0].pop("height"), r"images\[0\] lacks required key\(s\) \['height'\]"),
    (lambda d: d["annotations"][0].update(category_id=9),
     "annotation id 5 has unknown category_id 9"),
    (lambda d: d["annotations"][0].update(image_id=2), "annotation id 5 refers to image_id 2"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2]),
     r"annotation id 5 has bbox \[1, 2\]; expected"),
    (lambda d: d["annotations"][0].update(bbox=[1, "2", 3, 4]),
     r"annotation id 5 has bbox \[1, '2', 3, 4\]"),
    (lambda d: d["annotations"][0].update(bbox=[1, None, 3, 4]), "annotation id 5 has bbox"),
    (lambda d: d["images"].append(dict(d["images"][0])), "image ids are not unique"),
])
def test_not_coco_errors_name_file_and_key(tmp_path, mutate, match):
    data = copy.deepcopy(VALID)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(DatasetFormatError, match=match) as e:
        read_coco_json(path)
    assert path in str(e.value)


def test_non_json_and_non_object_and_missing_file(tmp_path):
    with pytest.raises(DatasetFormatError, match="not a JSON file"):
        read_coco_json(_write(tmp_path, "images: []"))
    with pytest.raises(DatasetFormatError, match="got a list"):
        read_coco_json(_write(tmp_path, [1, 2]))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_coco_json(str(tmp_path / "nope.json"))


def test_config_entries_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"COCO_JSON_DATASETS\[0\]"):
        register_from_entries("COCO_JSON_DATASETS", [("only_name", "x.json")])
    with pytest.raises(ValueError,
                       match=r"must be a list of \[name, json_file, image_root\] entries"):
        register_from_entries("COCO_JSON_DATASETS", ["my_train", "train.json", "images/"])
    with pytest.raises(FileNotFoundError, match="image_root"):
        register_from_entries("COCO_JSON_DATASETS",
                              [("ds", _write(tmp_path, VALID), str(tmp_path / "missing"))])


def test_config_entry_registered_once(tmp_path, monkeypatch):
    entry = [["once_ds", _write(tmp_path, VALID), str(tmp_path)]]
    register_from_entries("COCO_JSON_DATASETS", entry)
    monkeypatch.setattr(coco_format, "read_coco_json", lambda f: pytest.fail("read again"))
    register_from_entries("COCO_JSON_DATASETS", entry)  # same values: nothing to do
