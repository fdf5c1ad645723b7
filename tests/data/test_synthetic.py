"""The embedded synthetic "shapes" dataset: class tables, determinism, format validity, attributes.

ensure_synthetic() and its lock are tested in test_synthetic_ensure.py.
"""
import json
import os
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

import numpy as np
import pytest

from dynnet_d2.data.synthetic import (
    ALL_CLASSES,
    COLOR_NAMES,
    COLORS,
    FEWSHOT_SPLITS,
    NOVEL_CLASSES,
    PREFERRED_COLOR,
    PREFERRED_TEXTURE,
    TEXTURES,
    SyntheticSpec,
    all_classes,
    base_classes,
    coco_json_path,
    dataset_dir,
    generate_dataset,
    image_root,
    load_classification,
    lvis_json_path,
    manifest_path,
    novel_classes,
    voc_dir,
)
from dynnet_d2.data.synthetic.categories import DEFINITIONS, SUPERCATEGORY
from dynnet_d2.data.synthetic.export import lvis_frequency
from dynnet_d2.data.synthetic.polygons import mask_polygons
from dynnet_d2.data.synthetic.scene import render_scene

TINY = SyntheticSpec(num_train=12, num_val=4, num_test=6, num_lvis_train=30)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    generate_dataset(r, TINY, workers=2)
    return r


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _load(path):
    with open(path) as f:
        return json.load(f)


ANN_FILES = ["instances_train.json", "instances_val.json", "instances_test.json",
             "lvis_v0.5_train.json", "lvis_v0.5_val.json"]


def test_layout(root):
    d = dataset_dir(root)
    assert d == root / "shapes"
    m = _load(manifest_path(root))
    assert m["spec"] == TINY.to_dict()
    for split, n in [("train", 12), ("val", 4), ("test", 6), ("lvis_train", 30)]:
        assert m["counts"][split]["images"] == n
        ids = (voc_dir(root) / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        assert len(ids) == n and all(i.startswith(split + "_") for i in ids)
        assert all((image_root(root) / f"{i}.jpg").is_file() for i in ids)
    trainval = (voc_dir(root) / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    assert len(trainval) == 16
    assert not list(root.glob(".shapes.*-*")), "temporary generation directories left behind"


def test_deterministic_and_parallel_equals_serial(root, tmp_path):
    other = tmp_path / "again"
    generate_dataset(other, TINY, workers=1)  # serial run must equal the 2-worker run
    for name in ANN_FILES:
        assert _read(dataset_dir(root) / "annotations" / name) == \
            _read(dataset_dir(other) / "annotations" / name), name
    a, b = load_classification("train", root), load_classification("train", other)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    img_a, objs_a, _ = render_scene(TINY, "val", 3)
    img_b, objs_b, _ = render_scene(TINY, "val", 3)
    assert np.array_equal(img_a, img_b)
    assert all(np.array_equal(x["mask"], y["mask"]) for x, y in zip(objs_a, objs_b))

    seeded = tmp_path / "seed1"
    spec1 = SyntheticSpec(num_train=12, num_val=0, num_test=0, num_lvis_train=0, seed=1)
    generate_dataset(seeded, spec1, workers=1)
    assert _read(coco_json_path("train", seeded)) != _read(coco_json_path("train", root))


def test_coco_masks_areas_boxes(root):
    from pycocotools.coco import COCO

    for split in ("train", "val", "test"):
        coco = COCO(str(coco_json_path(split, root)))
        assert sorted(coco.getCatIds()) == list(range(1, 21))
        assert [coco.cats[i]["name"] for i in range(1, 21)] == list(ALL_CLASSES)
        for img in coco.dataset["images"]:
            assert (image_root(root) / img["file_name"]).is_file()
            n = len(coco.getAnnIds(imgIds=img["id"]))
            assert 2 <= n <= TINY.max_objects
        for ann in coco.dataset["annotations"]:
            assert ann["iscrowd"] == 0 and ann["segmentation"]
            assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
            m = coco.annToMask(ann)
            assert int(m.sum()) == ann["area"] > 0
            x, y, w, h = ann["bbox"]
            ys, xs = np.nonzero(m)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)


def test_polygons_reproduce_masks_with_holes():
    # A ring (hole) occluded so that it falls apart into two pieces.
    m = np.zeros((60, 80), np.uint8)
    yy, xx = np.mgrid[:60, :80]
    r2 = (yy - 30) ** 2 + (xx - 30) ** 2
    m[(r2 <= 20 ** 2) & (r2 >= 9 ** 2)] = 1
    m[:, 28:33] = 0
    m[5:15, 60:75] = 1
    from pycocotools import mask as mask_utils

    polys = mask_polygons(m)
    assert len(polys) == 3
    back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 60, 80)))
    assert np.array_equal(back, m)


def test_detectron2_loaders(root):
    from detectron2.data.datasets import load_coco_json
    from detectron2.data.datasets.lvis import load_lvis_json
    from detectron2.data.datasets.pascal_voc import load_voc_instances
    from detectron2.structures import BoxMode

    for split in ("train", "test"):
        dicts = load_coco_json(str(coco_json_path(split, root)), str(image_root(root)))
        coco = _load(coco_json_path(split, root))
        assert len(dicts) == len(coco["images"])
        assert sum(len(d["annotations"]) for d in dicts) == len(coco["annotations"])
        assert all(os.path.isfile(d["file_name"]) for d in dicts)

        voc = load_voc_instances(str(voc_dir(root)), split, list(ALL_CLASSES))
        by_name = {os.path.basename(d["file_name"]): d for d in dicts}
        assert len(voc) == len(dicts)
        for v in voc:
            c = by_name[os.path.basename(v["file_name"])]
            assert (v["height"], v["width"]) == (c["height"], c["width"])
            # load_coco_json without a dataset name keeps the json's 1-based category ids
            vb = [(a["category_id"] + 1, a["bbox"]) for a in v["annotations"]]
            cb = [(a["category_id"], [float(t) for t in BoxMode.convert(
                a["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)]) for a in c["annotations"]]
            assert vb == cb
    tree = ET.parse(voc_dir(root) / "Annotations" / "train_000000.xml")
    assert {o.find("difficult").text for o in tree.findall("object")} == {"0"}

    for split in ("train", "val"):
        dicts = load_lvis_json(str(lvis_json_path(split, root)), str(image_root(root)))
        assert dicts and all(os.path.isfile(d["file_name"]) for d in dicts)
        assert all(0 <= a["category_id"] < 20 for d in dicts for a in d["annotations"])


def test_lvis_format_and_frequencies(root):
    from lvis import LVIS

    train = LVIS(str(lvis_json_path("train", root)))
    val = LVIS(str(lvis_json_path("val", root)))
    assert len(train.dataset["images"]) == 30 and len(val.dataset["images"]) == 6
    assert train.dataset["categories"] == val.dataset["categories"]
    imgs_per_cat = defaultdict(set)
    inst_per_cat = Counter()
    for a in train.dataset["annotations"]:
        imgs_per_cat[a["category_id"]].add(a["image_id"])
        inst_per_cat[a["category_id"]] += 1
    for cat in train.dataset["categories"]:
        n = len(imgs_per_cat[cat["id"]])
        assert cat["image_count"] == n and cat["instance_count"] == inst_per_cat[cat["id"]]
        assert cat["frequency"] == ("r" if n <= 10 else "c" if n <= 100 else "f")
        assert cat["image_count"] >= 1  # every class occurs in lvis_train
    assert [lvis_frequency(n) for n in (0, 1, 10, 11, 100, 101)] == list("rrrccf")
    # long tail: the class counts are far from uniform
    counts = sorted(inst_per_cat.values())
    assert counts[-1] >= 8 * counts[0]
    for img in train.dataset["images"]:
        present = {a["category_id"] for a in train.img_ann_map[img["id"]]}
        assert img["not_exhaustive_category_ids"] == []
        assert img["neg_category_ids"] and not present & set(img["neg_category_ids"])


def test_class_tables_cover_every_class():
    classes = set(ALL_CLASSES)
    assert len(ALL_CLASSES) == len(classes) == 20
    for table in (PREFERRED_TEXTURE, PREFERRED_COLOR, SUPERCATEGORY, DEFINITIONS):
        assert set(table) == classes
    assert set(PREFERRED_TEXTURE.values()) == set(TEXTURES)  # every texture is preferred by some
    assert set(PREFERRED_COLOR.values()) <= set(COLORS)
    # distinct preferred (texture, colour) pairs: appearance alone tells the classes apart
    assert len({(PREFERRED_TEXTURE[c], PREFERRED_COLOR[c]) for c in ALL_CLASSES}) == 20


def test_fewshot_splits():
    assert FEWSHOT_SPLITS == (1, 2, 3) == tuple(sorted(NOVEL_CLASSES))
    novel_sets = []
    for fewshot_split in FEWSHOT_SPLITS:
        base, novel = base_classes(fewshot_split), novel_classes(fewshot_split)
        assert len(base) == 15 and len(novel) == 5
        assert set(base) | set(novel) == set(ALL_CLASSES) and not set(base) & set(novel)
        assert all_classes(fewshot_split) == base + novel
        assert sorted(novel) == sorted(NOVEL_CLASSES[fewshot_split])  # no duplicates, all known
        novel_sets.append(frozenset(novel))
    assert len(set(novel_sets)) == 3
    for bad in (0, 4, "1", True):
        with pytest.raises(ValueError,
                           match=r"few-shot split .*valid few-shot splits are \[1, 2, 3\]"):
            base_classes(bad)


def test_attributes_and_occlusion(root):
    anns = []
    for split in ("train", "val", "test"):
        anns += _load(coco_json_path(split, root))["annotations"]
    anns += _load(lvis_json_path("train", root))["annotations"]
    attrs = [a["attributes"] for a in anns]
    keys = {"shape", "color", "texture", "size", "scale_px", "rotation_deg", "occluded_fraction"}
    assert all(set(a) == keys for a in attrs)
    assert {a["color"] for a in attrs} == set(COLOR_NAMES)
    assert {a["texture"] for a in attrs} == set(TEXTURES)
    assert {a["size"] for a in attrs} >= {"small", "medium"}
    for a, at in zip(anns, attrs):
        assert at["shape"] == ALL_CLASSES[a["category_id"] - 1]
        expect = "small" if a["area"] < 1024 else "medium" if a["area"] < 9216 else "large"
        assert at["size"] == expect
        assert 0.0 <= at["occluded_fraction"] <= 1 - TINY.min_visible + 1e-6
    assert sum(at["occluded_fraction"] > 0 for at in attrs) >= 5
    # Appearance is tied to the class (preferred colour and texture, each with p = 0.8) but not
    # determined by it: the share of preferred values lies near 0.8, well above chance (1/8, 1/6).
    for table, key in ((PREFERRED_COLOR, "color"), (PREFERRED_TEXTURE, "texture")):
        share = np.mean([at[key] == table[at["shape"]] for at in attrs])
        assert 0.65 < share < 0.95, (key, share)


def test_classification_view(root):
    vocab = _load(dataset_dir(root) / "classification" / "vocab.json")
    assert vocab["labels"] == list(ALL_CLASSES) and vocab["texture"] == list(TEXTURES)
    for split in ("train", "val", "test"):
        z = load_classification(split, root)
        coco = _load(coco_json_path(split, root))
        n = len(coco["annotations"])
        assert z["images"].shape == (n, 32, 32, 3) and z["images"].dtype == np.uint8
        for k in ("labels", "color", "texture", "size", "image_ids"):
            assert z[k].shape == (n,), k
        assert z["labels"].tolist() == [a["category_id"] - 1 for a in coco["annotations"]]
        assert z["image_ids"].tolist() == [a["image_id"] for a in coco["annotations"]]
        assert [vocab["color"][i] for i in z["color"]] == \
            [a["attributes"]["color"] for a in coco["annotations"]]
        assert z["images"].std() > 10  # real crops, not blank


def test_bad_split_names(root):
    for fn in (coco_json_path, lvis_json_path, load_classification):
        with pytest.raises(ValueError, match="'bogus'"):
            fn("bogus", root)
    with pytest.raises(ValueError, match=r"'lvis_val'.*\['train', 'val', 'test'\]"):
        coco_json_path("lvis_val", root)
    with pytest.raises(ValueError, match="'nope'"):
        TINY.num_images("nope")
