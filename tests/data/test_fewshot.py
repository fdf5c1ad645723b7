"""Few-shot data protocol: exact, nested, deterministic K-shot sets in TFA's file formats; fsdet's
files that list more than K instances trimmed to exactly K, deterministically."""
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from dynnet_d2.data.errors import DatasetFormatError
from dynnet_d2.data.fewshot import (
    FewShotSamplingError,
    kshot_dicts_from_coco_splits,
    kshot_dicts_from_voc_splits,
    pool_from_coco,
    read_voc_split,
    sample_fewshot,
    write_coco_split,
    write_voc_split,
)
from dynnet_d2.data.fewshot.split_files import existing_split_file

# Images hold 1-3 instances of a class: exact K needs the budget check.
POOL = {
    "cat": {f"img{i}": 1 + (i % 3) for i in range(40)},
    "dog": {f"img{i}": 1 for i in range(20, 45)},
}
SHOTS = (1, 2, 3, 5, 10)


def test_exactly_k_instances_nested_without_duplicates():
    samples = sample_fewshot(POOL, ["cat", "dog"], SHOTS, seed=3)
    for class_name, per_shot in samples.items():
        for k in SHOTS:
            keys = per_shot[k]
            assert len(keys) == len(set(keys)), "an image counted twice"
            assert sum(POOL[class_name][key] for key in keys) == k
        for smaller, larger in zip(SHOTS, SHOTS[1:]):
            assert per_shot[larger][:len(per_shot[smaller])] == per_shot[smaller]  # nested


def test_samples_depend_on_seed_and_class_only():
    a = sample_fewshot(POOL, ["cat", "dog"], SHOTS, seed=3)
    # Other classes and larger shots do not change a class's samples.
    assert sample_fewshot(POOL, ["dog"], SHOTS, seed=3)["dog"] == a["dog"]
    assert sample_fewshot(POOL, ["cat"], (1, 2), seed=3)["cat"] == {k: a["cat"][k] for k in (1, 2)}
    assert sample_fewshot(POOL, ["cat", "dog"], SHOTS, seed=4) != a


def test_too_few_instances_and_no_exact_fit_are_named():
    with pytest.raises(FewShotSamplingError, match=r"class 'dog' has only 25 instance\(s\) in "
                                                   r"voc_x, fewer than 30 shots"):
        sample_fewshot(POOL, ["dog"], (1, 30), seed=0, source="voc_x")
    with pytest.raises(FewShotSamplingError, match="class 'bird' has only 0"):
        sample_fewshot(POOL, ["bird"], (1,), seed=0)
    pairs = {"pair": {"a": 2, "b": 2, "c": 2}}
    with pytest.raises(FewShotSamplingError, match="class 'pair', seed 0: no untaken image"):
        sample_fewshot(pairs, ["pair"], (1,), seed=0)


HASH_SPLITS = """
import hashlib, sys, tempfile
from pathlib import Path
from dynnet_d2.data.fewshot import sample_fewshot, write_voc_split
pool = {c: {f"i{i}": 1 + (i * 7 + len(c)) % 2 for i in range(60)} for c in ("a", "b", "c")}
root = tempfile.mkdtemp()
write_voc_split(root, 5, sample_fewshot(pool, ["a", "b", "c"], (1, 2, 3, 5, 10), seed=5))
digest = hashlib.sha256()
for f in sorted(Path(root).rglob("*.txt")):
    digest.update(f.name.encode() + f.read_bytes())
print(digest.hexdigest())
"""


def test_split_files_are_byte_identical_across_processes():
    outputs = [subprocess.run([sys.executable, "-c", HASH_SPLITS], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, PYTHONHASHSEED=str(seed)))
               for seed in (1, 2)]
    assert all(o.returncode == 0 for o in outputs), outputs[0].stderr[-2000:]
    assert outputs[0].stdout == outputs[1].stdout and len(outputs[0].stdout.strip()) == 64


def test_voc_split_round_trip_and_fsdet_layout(tmp_path):
    samples = sample_fewshot(POOL, ["cat"], (1, 2), seed=0)
    write_voc_split(str(tmp_path), 0, samples)
    path = existing_split_file("voc", str(tmp_path), 0, 2, "cat")
    assert path == tmp_path / "seed0" / "box_2shot_cat_train.txt"
    assert read_voc_split(path) == samples["cat"][2]
    # fsdet keeps seed 0 in the root and lists image paths.
    (tmp_path / "box_1shot_dog_train.txt").write_text("datasets/VOC2007/JPEGImages/000005.jpg\n")
    fsdet_file = existing_split_file("voc", str(tmp_path), 0, 1, "dog")
    assert read_voc_split(fsdet_file) == ["000005"]
    with pytest.raises(FileNotFoundError, match="seed 3.*prepare_fewshot_splits"):
        existing_split_file("voc", str(tmp_path), 3, 1, "cat")


def _coco():
    """8 images with 1-2 cats (id 3) and 1-3 dogs (id 7); the last dog is a crowd box."""
    images = [{"id": i, "file_name": f"{i}.jpg", "height": 10, "width": 10} for i in range(1, 9)]
    per_image = [(3, i) for i, n in enumerate([1, 1, 2, 1, 1, 2, 1, 1], 1) for _ in range(n)]
    per_image += [(7, i) for i, n in enumerate([1, 2, 1, 1, 3, 1, 1, 2], 1) for _ in range(n)]
    annotations = [{"id": n, "image_id": image, "category_id": category, "bbox": [1, 1, 3, 3],
                    "iscrowd": int(n == len(per_image))}
                   for n, (category, image) in enumerate(per_image, 1)]
    return {"info": {"v": 1}, "images": images, "annotations": annotations,
            "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}


def test_coco_split_round_trip(tmp_path):
    coco = _coco()
    pool = pool_from_coco(coco, {3: "cat", 7: "dog"})
    assert sum(pool["dog"].values()) == 11  # 12 dog annotations, one crowd
    assert sum(pool["cat"].values()) == 10
    samples = sample_fewshot(pool, ["cat", "dog"], (1, 2, 3), seed=1)
    write_coco_split(str(tmp_path), 1, samples, coco, {"cat": 3, "dog": 7})
    data = json.loads((tmp_path / "seed1" / "full_box_3shot_dog_trainval.json").read_text())
    assert [im["id"] for im in data["images"]] == [int(k) for k in samples["dog"][3]]
    assert {a["category_id"] for a in data["annotations"]} == {7} and len(data["annotations"]) == 3
    assert data["categories"] == coco["categories"] and data["info"] == {"v": 1}
    dicts = kshot_dicts_from_coco_splits(str(tmp_path), 1, 3, ["cat", "dog"], {"cat": 3, "dog": 7},
                                         "/images")
    counts = Counter(a["category_id"] for d in dicts for a in d["annotations"])
    assert counts == {0: 3, 1: 3}
    assert len({d["image_id"] for d in dicts}) == len(dicts)  # one record per image
    assert dicts[0]["file_name"].startswith("/images/")


def test_registered_kshot_sets_hold_exactly_k_per_class():
    name = "shapes_train_all1_1shot_seed0"
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == list(meta.base_classes) + list(meta.novel_classes)
    dicts = DatasetCatalog.get(name)
    counts = Counter(meta.thing_classes[a["category_id"]] for d in dicts for a in d["annotations"])
    assert counts == {c: 1 for c in meta.thing_classes}
    assert len({d["image_id"] for d in dicts}) == len(dicts)
    novel = DatasetCatalog.get("shapes_train_novel1_1shot_seed0")
    novel_meta = MetadataCatalog.get("shapes_train_novel1_1shot_seed0")
    assert novel_meta.thing_classes == list(meta.novel_classes)
    novel_counts = Counter(a["category_id"] for d in novel for a in d["annotations"])
    assert novel_counts == {i: 1 for i in range(5)}
    assert DatasetCatalog.get(name) == dicts  # loading never samples


def test_split_file_naming_a_missing_image_is_named(tmp_path):
    (tmp_path / "seed0").mkdir()
    (tmp_path / "seed0" / "box_1shot_cat_train.txt").write_text("nope\n")
    source = [{"image_id": "a", "file_name": "a.jpg",
               "annotations": [{"category_id": 0, "bbox": [0, 0, 1, 1]}]}]
    with pytest.raises(DatasetFormatError, match="box_1shot_cat_train.txt: image 'nope' is not in "
                                                 "dataset 'src'"):
        kshot_dicts_from_voc_splits(str(tmp_path), 0, 1, ["cat"], source, ["cat"], "src")
    (tmp_path / "seed0" / "box_1shot_cat_train.txt").write_text("a\n")
    with pytest.raises(DatasetFormatError, match="image 'a' of 'src' has no 'dog' instance"):
        (tmp_path / "seed0" / "box_1shot_dog_train.txt").write_text("a\n")
        kshot_dicts_from_voc_splits(str(tmp_path), 0, 1, ["dog"], source, ["cat", "dog"], "src")


def test_split_files_of_the_synthetic_data_are_written_on_first_use(shapes_root):
    from dynnet_d2.data.builtin import fewshot_split_root

    seed_dir = Path(fewshot_split_root(shapes_root)) / "seed4"

    def digest(files):
        return hashlib.sha256(b"".join((seed_dir / f).read_bytes() for f in files)).hexdigest()

    DatasetCatalog.get("shapes_train_all2_1shot_seed4")
    files = sorted(p.name for p in seed_dir.iterdir())
    assert len(files) == 20 and files[0] == "box_1shot_arrow_train.txt"
    first = digest(files)
    for f in files:
        (seed_dir / f).unlink()
    DatasetCatalog.get("shapes_train_all2_1shot_seed4")  # regenerated: the same bytes
    assert digest(files) == first


def _fewshot_cfg(tmp_path, **node):
    from dynnet_d2.config import get_dynnet_cfg
    from dynnet_d2.data.synthetic import coco_json_path, image_root

    cfg = get_dynnet_cfg()
    entries = [["my_pool", str(coco_json_path("train")), str(image_root())],
               ["my_test", str(coco_json_path("test")), str(image_root())]]
    cfg.merge_from_list(["DATASETS.COCO_JSON_DATASETS", entries, "DATASETS.FEWSHOT.NAME", "mine",
                         "DATASETS.FEWSHOT.TRAIN", "my_pool", "DATASETS.FEWSHOT.TEST", "my_test",
                         "DATASETS.FEWSHOT.NOVEL_CLASSES", ["star", "ring"],
                         "DATASETS.FEWSHOT.SHOTS", [1], "DATASETS.FEWSHOT.SEEDS", 2,
                         "DATASETS.FEWSHOT.SPLIT_DIR", str(tmp_path / "splits")])
    for key, value in node.items():
        cfg.DATASETS.FEWSHOT[key] = value
    return cfg


def test_custom_fewshot_data_by_config(tmp_path):
    from dynnet_d2.data import register_datasets_from_config

    register_datasets_from_config(_fewshot_cfg(tmp_path))
    meta = MetadataCatalog.get("mine_test_all")
    assert meta.novel_classes == ["star", "ring"] and meta.thing_classes[-2:] == ["star", "ring"]
    assert len(meta.base_classes) == 18 and meta.evaluator_type == "coco"
    test_all = DatasetCatalog.get("mine_test_all")
    assert len(test_all) == len(DatasetCatalog.get("my_test"))
    novel = DatasetCatalog.get("mine_train_novel_1shot_seed1")
    assert Counter(a["category_id"] for d in novel for a in d["annotations"]) == {0: 1, 1: 1}
    assert MetadataCatalog.get("mine_train_novel_1shot_seed1").thing_classes == ["star", "ring"]
    shots = DatasetCatalog.get("mine_train_all_1shot_seed0")
    assert sum(len(d["annotations"]) for d in shots) == 20
    assert (tmp_path / "splits" / "seed0" / "box_1shot_star_train.txt").is_file()


@pytest.mark.parametrize("node,match", [
    (dict(NOVEL_CLASSES=["unicorn"]), r"\['unicorn'\]: \['unicorn'\] are not classes"),
    (dict(TRAIN="nope"), "DATASETS.FEWSHOT.TRAIN='nope' is not a registered dataset"),
    (dict(SHOTS=[0]), r"SHOTS=\[0\]"),
])
def test_custom_fewshot_config_errors_name_the_key(tmp_path, node, match):
    from dynnet_d2.data import register_datasets_from_config

    with pytest.raises(ValueError, match=match):
        register_datasets_from_config(_fewshot_cfg(tmp_path, NAME="bad", **node))


def test_joint_training_set_has_every_base_annotation_and_k_novel_shots():
    meta = MetadataCatalog.get("shapes_train_joint1_1shot_seed0")
    joint = DatasetCatalog.get("shapes_train_joint1_1shot_seed0")
    counts = Counter(meta.thing_classes[a["category_id"]] for d in joint for a in d["annotations"])
    assert {c: counts[c] for c in meta.novel_classes} == {c: 1 for c in meta.novel_classes}
    base = DatasetCatalog.get("shapes_train_base1")
    base_meta = MetadataCatalog.get("shapes_train_base1")
    expected = Counter(base_meta.thing_classes[a["category_id"]] for d in base
                       for a in d["annotations"])
    assert {c: counts[c] for c in meta.base_classes} == dict(expected)
    assert len({d["image_id"] for d in joint}) == len(joint)


def _cats(image_id, n, first):
    return {"image_id": image_id, "file_name": f"{image_id}.jpg",
            "annotations": [{"category_id": 0, "bbox": [first + i, 0, 2, 2]} for i in range(n)]}


def test_fsdet_files_listing_more_than_k_instances_are_trimmed_to_k(tmp_path, monkeypatch):
    """fsdet's published files list K images; their instances are trimmed to exactly K, the
    same way every time, per seed and class."""
    messages = []
    monkeypatch.setattr("dynnet_d2.data.fewshot.datasets.logger",
                        SimpleNamespace(info=messages.append, warning=messages.append))
    source = [_cats("a", 3, 0), _cats("b", 2, 10), _cats("c", 1, 20),
              {"image_id": "d", "file_name": "d.jpg",
               "annotations": [{"category_id": 1, "bbox": [0, 0, 2, 2]}]}]
    for seed in (0, 1):
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}" / "box_2shot_cat_train.txt").write_text("a\nb\n")  # 5 cats
        (tmp_path / f"seed{seed}" / "box_2shot_dog_train.txt").write_text("d\n")  # 1 dog < 2
    for seed in (0, 1):
        messages.clear()
        dicts = kshot_dicts_from_voc_splits(str(tmp_path), seed, 2, ["cat", "dog"], source,
                                            ["cat", "dog"], "src")
        cats = [(d["image_id"], a["bbox"][0]) for d in dicts for a in d["annotations"]
                if a["category_id"] == 0]
        assert len(cats) == 2 and len(set(cats)) == 2
        assert all(x in {("a", 0), ("a", 1), ("a", 2), ("b", 10), ("b", 11)} for x in cats)
        assert all(d["annotations"] for d in dicts)  # an image left without its class is dropped
        assert any("5 instances of 'cat' in its 2 images; kept 2 (seed " + str(seed)
                   + "), dropped 3" in m for m in messages), messages
        assert any("1 instances of 'dog' in a 2-shot split file (used as they are" in m
                   for m in messages)
        again = kshot_dicts_from_voc_splits(str(tmp_path), seed, 2, ["cat", "dog"], source,
                                            ["cat", "dog"], "src")
        assert again == dicts  # the same on every load


TRIM_IN_A_PROCESS = """
import json, sys
from dynnet_d2.data.fewshot import kshot_dicts_from_voc_splits
source = [{"image_id": k, "file_name": k,
           "annotations": [{"category_id": 0, "bbox": [10 * n + i, 0, 2, 2]} for i in range(4)]}
          for n, k in enumerate("ab")]
dicts = kshot_dicts_from_voc_splits(sys.argv[1], 3, 2, ["cat"], source, ["cat"], "src")
print(json.dumps([[d["image_id"], a["bbox"][0]] for d in dicts for a in d["annotations"]]))
"""


def test_trimming_is_the_same_in_every_process_and_for_coco_files(tmp_path):
    (tmp_path / "seed3").mkdir()
    (tmp_path / "seed3" / "box_2shot_cat_train.txt").write_text("a\nb\n")  # 8 cats
    outputs = {subprocess.run([sys.executable, "-c", TRIM_IN_A_PROCESS, str(tmp_path)],
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONHASHSEED=str(seed))).stdout.strip()
               for seed in (1, 2)}
    assert len(outputs) == 1 and len(json.loads(outputs.pop())) == 2
    # An fsdet-style 1-shot dog file in COCO format: images 2 and 5, with 2 + 3 dogs.
    write_coco_split(str(tmp_path), 3, {"dog": {1: ["2", "5"]}}, _coco(), {"cat": 3, "dog": 7})
    dicts = kshot_dicts_from_coco_splits(str(tmp_path), 3, 1, ["dog"], {"dog": 7}, "/images")
    assert sum(len(d["annotations"]) for d in dicts) == 1 and len(dicts) == 1
