"""TFA's few-shot names on the real VOC / COCO / LVIS layouts (dynnet_d2/data/fewshot/real.py),
on tiny fake copies of those layouts: fsdet's folders, their published split files, our
sampling when files are missing."""
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.lvis_v0_5_categories import LVIS_CATEGORIES
from detectron2.structures import Boxes, BoxMode, Instances
from PIL import Image

from dynnet_d2.data.fewshot.real import VOC_POOL, register_real_fewshot_datasets
from dynnet_d2.data.fewshot.real_metadata import (
    COCO_CLASS_IDS,
    COCO_CLASSES,
    LVIS_CLASS_IDS,
    LVIS_CLASSES,
    LVIS_NOVEL_CLASSES,
    VOC_CLASSES,
    coco_classes,
    voc_classes,
)
from dynnet_d2.evaluation.coco import DynnetCOCOEvaluator

VOC2012_IDS = [f"2008_{k:06d}" for k in range(20)]  # image k: one object of VOC_CLASSES[k]
VOC2007_IDS = [f"{k:06d}" for k in range(20)]  # the same
LVIS_FREQUENCY = {c["id"]: c["frequency"] for c in LVIS_CATEGORIES}
LVIS_IDS = {f: min(i for i, g in LVIS_FREQUENCY.items() if g == f) for f in "fcr"}


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), (90, 120, 30)).save(path, "JPEG")


def _voc_image(folder: Path, image_id: str, classes) -> None:
    _jpeg(folder / "JPEGImages" / f"{image_id}.jpg")
    objects = "".join(
        f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{2 + i}</xmin>"
        f"<ymin>3</ymin><xmax>{20 + i}</xmax><ymax>15</ymax></bndbox></object>"
        for i, c in enumerate(classes))
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    (folder / "Annotations" / f"{image_id}.xml").write_text(
        f"<annotation><filename>{image_id}.jpg</filename><size><width>32</width>"
        f"<height>24</height><depth>3</depth></size>{objects}</annotation>")


def _voc_folder(folder: Path, splits) -> None:
    for split, images in splits.items():
        for image_id, classes in images.items():
            _voc_image(folder, image_id, classes)
        main = folder / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in images))


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _coco(images, annotations, categories):
    """COCO JSON of ``images`` ``{id: file_name}`` and ``annotations`` ``[(image id, class)]``."""
    return {"images": [{"id": i, "file_name": f, "height": 24, "width": 32}
                       for i, f in images.items()],
            "annotations": [{"id": n + 1, "image_id": i, "category_id": categories[c],
                             "bbox": [2.0 + n % 5, 3.0, 10.0, 8.0], "area": 80.0, "iscrowd": 0}
                            for n, (i, c) in enumerate(annotations)],
            "categories": [{"id": cid, "name": c} for c, cid in categories.items()]}


def _coco_layout(root: Path) -> None:
    for folder in ("trainval2014", "val2014"):
        _jpeg(root / "coco" / folder / "placeholder.jpg")
    # Image j holds one instance of class j; image 100 two persons and a dog.
    images = {j: f"COCO_train2014_{j:012d}.jpg" for j in range(80)}
    images[100] = "COCO_val2014_000000000100.jpg"
    annotations = [(j, c) for j, c in enumerate(COCO_CLASSES)]
    annotations += [(100, "person"), (100, "person"), (100, "dog")]
    _write_json(root / "cocosplit" / "datasplit" / "trainvalno5k.json",
                _coco(images, annotations, COCO_CLASS_IDS))
    test_images = {1001 + k: f"COCO_val2014_{1001 + k:012d}.jpg" for k in range(4)}
    _write_json(root / "cocosplit" / "datasplit" / "5k.json", _coco(
        test_images, [(1001, "person"), (1001, "truck"), (1002, "elephant"), (1003, "cat")],
        COCO_CLASS_IDS))
    # fsdet's published seed-0 files of the novel classes, directly in cocosplit/: image
    # 5000 + k (not in trainvalno5k.json), so a result drawn from them is recognisable.
    for k, c in enumerate(coco_classes("novel")):
        _write_json(root / "cocosplit" / f"full_box_1shot_{c}_trainval.json", _coco(
            {5000 + k: f"COCO_train2014_{5000 + k:012d}.jpg"}, [(5000 + k, c)], COCO_CLASS_IDS))


def _lvis_layout(root: Path) -> None:
    for folder in ("train2017", "val2017"):
        _jpeg(root / "coco" / folder / "000000000001.jpg")
    categories = [{"id": c["id"], "name": c["name"], "synonyms": c["synonyms"],
                   "frequency": c["frequency"]} for c in LVIS_CATEGORIES]
    names = {c["id"]: c["name"] for c in categories}

    def lvis(annotations):  # [(image id, category id)]
        data = _coco({i: f"COCO_val2014_{i:012d}.jpg" for i in (1, 2, 3)},
                     [(i, names[c]) for i, c in annotations], {v: k for k, v in names.items()})
        for image in data["images"]:
            image["coco_url"] = f"http://images.cocodataset.org/train2017/{image['id']:012d}.jpg"
        data["categories"] = categories
        return data

    f, c, r = LVIS_IDS["f"], LVIS_IDS["c"], LVIS_IDS["r"]
    _write_json(root / "lvis" / "lvis_v0.5_train.json", lvis([(1, f), (2, c), (3, r), (3, f)]))
    _write_json(root / "lvis" / "lvis_v0.5_val.json", lvis([(1, r), (2, f)]))
    # fsdet's split_lvis_annotation.py output for "common", different from the derived one.
    _write_json(root / "lvis" / "lvis_v0.5_train_common.json", lvis([(1, c), (3, c)]))
    shots = lvis([(1, f), (3, r)])
    for image in shots["images"]:  # file_name only: COCO_val2014_<id>.jpg is <id>.jpg in 2017
        del image["coco_url"]
    _write_json(root / "lvissplit" / "lvis_shots.json", shots)


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    """VOC2007 (trainval, test), VOC2012 (trainval), fsdet's COCO and LVIS v0.5 layouts."""
    root = tmp_path_factory.mktemp("real")
    trainval07 = {image_id: [c] for image_id, c in zip(VOC2007_IDS, VOC_CLASSES)}
    trainval07["000021"] = ["cow", "cow", "person"]
    _voc_folder(root / "VOC2007", {"trainval": trainval07, "test": {
        "000101": ["aeroplane", "bird"], "000102": ["sofa", "dog", "bird"], "000103": []}})
    _voc_folder(root / "VOC2012", {"trainval": {
        image_id: [c] for image_id, c in zip(VOC2012_IDS, VOC_CLASSES)}})
    _coco_layout(root)
    _lvis_layout(root)
    return root


@pytest.fixture(autouse=True)
def default_registration():
    yield
    register_real_fewshot_datasets()  # the test session's root: no real data, no names


def _category_counts(dicts, classes):
    return Counter(classes[a["category_id"]] for d in dicts for a in d["annotations"])


def test_names_exist_only_for_the_folders_that_exist(real_root, tmp_path):
    shutil.copytree(real_root / "VOC2007", tmp_path / "VOC2007")
    only_voc07 = set(register_real_fewshot_datasets(str(tmp_path)))
    assert only_voc07 == {f"voc_2007_{split}_{part}{s}" for s in (1, 2, 3) for split, part in
                          [("trainval", "base"), ("trainval", "all"), ("test", "base"),
                           ("test", "novel"), ("test", "all")]}
    assert only_voc07 <= set(DatasetCatalog.list())

    names = set(register_real_fewshot_datasets(str(real_root)))
    assert only_voc07 < names and names <= set(DatasetCatalog.list())
    expected = {"voc_2012_trainval_base3", VOC_POOL, "voc_2007_trainval_all1_1shot_seed0",
                "voc_2012_trainval_novel3_10shot_seed29", "coco_trainval_all", "coco_trainval_base",
                "coco_test_all", "coco_test_base", "coco_test_novel",
                "coco_trainval_all_30shot_seed9", "coco_trainval_novel_1shot_seed0",
                "lvis_v0.5_train_freq", "lvis_v0.5_train_common", "lvis_v0.5_train_rare",
                "lvis_v0.5_train_rare_novel", "lvis_v0.5_train_shots", "lvis_v0.5_val_novel"}
    assert expected <= names
    assert "voc_2007_trainval_all1_1shot_seed30" not in names
    assert "coco_trainval_all_30shot_seed10" not in names
    assert len([n for n in names if n.startswith("voc_") and "shot" in n]) == 2 * 3 * 2 * 5 * 30
    assert len([n for n in names if n.startswith("coco_") and "shot" in n]) == 2 * 6 * 10

    (tmp_path / "VOC2007" / "ImageSets" / "Main" / "test.txt").unlink()  # trainval only
    (tmp_path / "VOC2012" / "Annotations").mkdir(parents=True)  # no ImageSets/Main/trainval.txt
    assert set(register_real_fewshot_datasets(str(tmp_path))) == {
        n for n in only_voc07 if "trainval" in n}
    assert register_real_fewshot_datasets(str(tmp_path / "empty")) == []
    assert not names & set(DatasetCatalog.list())  # a later call removes the earlier names


def test_registration_reads_nothing(real_root, tmp_path):
    """Registration only checks that paths exist: unreadable files fail when loaded, not
    before."""
    for name in ("VOC2007", "VOC2012", "coco", "lvis"):
        shutil.copytree(real_root / name, tmp_path / name)
    for xml in (tmp_path / "VOC2007" / "Annotations").glob("*.xml"):
        xml.write_text("<annotation>")
    for path in (tmp_path / "lvis").glob("*.json"):
        path.write_text("not json")
    _write_json(tmp_path / "cocosplit" / "datasplit" / "5k.json", [])
    names = register_real_fewshot_datasets(str(tmp_path))
    assert {"voc_2007_test_all1", "coco_test_all", "lvis_v0.5_train_rare"} <= set(names)
    for name in ("voc_2007_test_all1", "coco_test_all", "lvis_v0.5_train_rare"):
        with pytest.raises(Exception, match="not a well-formed XML|not a JSON|expected a COCO"):
            DatasetCatalog.get(name)


def test_voc_test_all_classes_order_and_metadata(real_root):
    register_real_fewshot_datasets(str(real_root))
    all1 = voc_classes("all", 1)
    assert all1[15:] == ["bird", "bus", "cow", "motorbike", "sofa"] and all1[0] == "aeroplane"
    metadata = MetadataCatalog.get("voc_2007_test_all1")
    assert metadata.thing_classes == all1
    assert metadata.novel_classes == ["bird", "bus", "cow", "motorbike", "sofa"]
    assert metadata.base_classes == all1[:15]
    assert (metadata.evaluator_type, metadata.year, metadata.split) == ("pascal_voc", 2007, "test")
    dicts = {d["image_id"]: d for d in DatasetCatalog.get("voc_2007_test_all1")}
    assert sorted(dicts) == ["000101", "000102", "000103"]
    assert [all1[a["category_id"]] for a in dicts["000102"]["annotations"]] == [
        "sofa", "dog", "bird"]
    assert [a["category_id"] for a in dicts["000101"]["annotations"]] == [0, 15]
    novel = DatasetCatalog.get("voc_2007_test_novel2")  # aeroplane bottle cow horse sofa
    assert MetadataCatalog.get("voc_2007_test_novel2").thing_classes == voc_classes("novel", 2)
    assert _category_counts(novel, voc_classes("novel", 2)) == {"aeroplane": 1, "sofa": 1}
    assert len(novel) == 3  # test views keep images without their classes
    base = MetadataCatalog.get("voc_2012_trainval_base3")
    assert (base.thing_classes, base.year) == (voc_classes("base", 3), 2012)
    assert "sheep" not in base.thing_classes and len(base.thing_classes) == 15


def test_voc_kshot_from_fsdet_published_files(real_root, tmp_path):
    """fsdet's vocsplit/: image paths, seed 0 directly in the folder, VOC2007 and VOC2012
    images; a listed image with more than K instances is trimmed to K."""
    for name in ("VOC2007", "VOC2012"):
        (tmp_path / name).symlink_to(real_root / name)
    vocsplit = tmp_path / "vocsplit"
    vocsplit.mkdir()
    for k, c in enumerate(VOC_CLASSES):
        path = ("datasets/VOC2007/JPEGImages/000021.jpg" if c == "cow"
                else f"datasets/VOC2012/JPEGImages/{VOC2012_IDS[k]}.jpg")
        (vocsplit / f"box_1shot_{c}_train.txt").write_text(path + "\n")
    register_real_fewshot_datasets(str(tmp_path))
    all1 = voc_classes("all", 1)
    dicts = DatasetCatalog.get("voc_2007_trainval_all1_1shot_seed0")
    by_id = {d["image_id"]: d for d in dicts}
    assert len(dicts) == 20 and "000021" in by_id
    assert [all1[a["category_id"]] for a in by_id["000021"]["annotations"]] == ["cow"]
    assert by_id["000021"]["file_name"].endswith("VOC2007/JPEGImages/000021.jpg")
    for k, c in enumerate(VOC_CLASSES):
        if c != "cow":
            assert [all1[a["category_id"]] for a in by_id[VOC2012_IDS[k]]["annotations"]] == [c]
    assert not (vocsplit / "seed0").exists()  # nothing sampled: the published files decide
    novel = DatasetCatalog.get("voc_2012_trainval_novel1_1shot_seed0")
    assert _category_counts(novel, voc_classes("novel", 1)) == {
        "bird": 1, "bus": 1, "cow": 1, "motorbike": 1, "sofa": 1}
    metadata = MetadataCatalog.get("voc_2012_trainval_novel1_1shot_seed0")
    assert (metadata.shot, metadata.seed, metadata.year) == (1, 0, 2012)


def test_voc_kshot_sampled_when_missing(real_root, tmp_path):
    for name in ("VOC2007", "VOC2012"):
        (tmp_path / name).symlink_to(real_root / name)
    register_real_fewshot_datasets(str(tmp_path))
    all2 = voc_classes("all", 2)
    dicts = DatasetCatalog.get("voc_2007_trainval_all2_2shot_seed3")
    assert _category_counts(dicts, all2) == {c: 2 for c in VOC_CLASSES}
    assert any(d["image_id"].startswith("2008_") for d in dicts)  # the pool has both years
    written = tmp_path / "vocsplit" / "seed3"
    assert len(list(written.glob("box_2shot_*_train.txt"))) == 20
    assert len(list(written.glob("box_1shot_*_train.txt"))) == 20  # nested smaller shots
    novel = DatasetCatalog.get("voc_2012_trainval_novel2_2shot_seed3")  # the same files
    assert _category_counts(novel, voc_classes("novel", 2)) == {c: 2 for c in
                                                                voc_classes("novel", 2)}


def test_coco_views_metadata_and_evaluation(real_root, tmp_path):
    register_real_fewshot_datasets(str(real_root))
    all_classes = coco_classes("all")
    metadata = MetadataCatalog.get("coco_test_all")
    assert metadata.thing_classes == all_classes and all_classes[60:] == coco_classes("novel")
    assert len(metadata.base_classes) == 60 and metadata.novel_classes[:3] == [
        "person", "bicycle", "car"]
    assert metadata.thing_dataset_id_to_contiguous_id[1] == 60  # person: the first novel class
    assert metadata.json_file.endswith("cocosplit/datasplit/5k.json")
    assert metadata.evaluator_type == "coco"
    assert not MetadataCatalog.get("coco_test_novel").get("json_file")  # 5k.json has all 80
    dicts = DatasetCatalog.get("coco_test_all")
    assert len(dicts) == 4 and dicts[0]["file_name"].endswith("coco/val2014/"
                                                              "COCO_val2014_000000001001.jpg")
    assert [all_classes[a["category_id"]] for a in dicts[0]["annotations"]] == ["person", "truck"]
    assert _category_counts(DatasetCatalog.get("coco_test_novel"), coco_classes("novel")) == {
        "person": 1, "cat": 1}
    base = DatasetCatalog.get("coco_trainval_base")  # without the persons and dog of image 100
    assert _category_counts(base, coco_classes("base")) == {c: 1 for c in coco_classes("base")}
    assert len(base) == 81

    # The ground truth as predictions: AP 100 over all, base and novel classes with the
    # base-then-novel order mapped back to COCO's ids.
    evaluator = DynnetCOCOEvaluator("coco_test_all", output_dir=str(tmp_path))
    evaluator.reset()
    for record in dicts:
        instances = Instances((24, 32))
        boxes = [BoxMode.convert(a["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
                 for a in record["annotations"]]
        instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.scores = torch.ones(len(boxes))
        instances.pred_classes = torch.tensor([a["category_id"] for a in record["annotations"]],
                                              dtype=torch.int64)
        evaluator.process([{"image_id": record["image_id"]}], [{"instances": instances}])
    bbox = evaluator.evaluate()["bbox"]
    assert bbox["AP"] == pytest.approx(100) and bbox["bAP"] == pytest.approx(100)
    assert bbox["nAP"] == pytest.approx(100) and bbox["AP-person"] == pytest.approx(100)


def test_coco_kshot_published_and_sampled(real_root, tmp_path):
    (tmp_path / "coco").symlink_to(real_root / "coco")
    shutil.copytree(real_root / "cocosplit", tmp_path / "cocosplit")
    register_real_fewshot_datasets(str(tmp_path))
    novel = coco_classes("novel")
    dicts = DatasetCatalog.get("coco_trainval_novel_1shot_seed0")  # fsdet's seed-0 files
    assert sorted(d["image_id"] for d in dicts) == list(range(5000, 5020))
    assert all(novel[d["annotations"][0]["category_id"]] == novel[d["image_id"] - 5000]
               for d in dicts)
    assert not (tmp_path / "cocosplit" / "seed0").exists()
    metadata = MetadataCatalog.get("coco_trainval_novel_1shot_seed0")
    assert metadata.thing_dataset_id_to_contiguous_id == {COCO_CLASS_IDS[c]: i
                                                          for i, c in enumerate(novel)}

    all_classes = coco_classes("all")
    sampled = DatasetCatalog.get("coco_trainval_all_1shot_seed1")  # no files: sampled by us
    assert _category_counts(sampled, all_classes) == {c: 1 for c in COCO_CLASSES}
    assert len(list((tmp_path / "cocosplit" / "seed1").glob("full_box_1shot_*.json"))) == 80
    assert sampled[0]["file_name"].startswith(str(tmp_path / "coco" / "trainval2014"))
    metadata = MetadataCatalog.get("coco_trainval_all_1shot_seed1")
    assert metadata.thing_classes == all_classes and metadata.novel_classes == novel
    assert metadata.thing_dataset_id_to_contiguous_id[COCO_CLASS_IDS["person"]] == 60


def test_lvis_frequency_groups_shots_and_metadata(real_root):
    register_real_fewshot_datasets(str(real_root))
    f, c, r = LVIS_IDS["f"], LVIS_IDS["c"], LVIS_IDS["r"]

    def content(name):
        return sorted((d["image_id"], a["category_id"] + 1)
                      for d in DatasetCatalog.get(name) for a in d["annotations"])

    # Derived from lvis_v0.5_train.json by the categories' frequency field (ids in LVIS order).
    assert content("lvis_v0.5_train_freq") == [(1, f), (3, f)]
    assert content("lvis_v0.5_train_rare") == [(3, r)]
    assert [d["image_id"] for d in DatasetCatalog.get("lvis_v0.5_train_freq")] == [1, 3]
    # fsdet's lvis_v0.5_train_common.json is read as it is.
    assert content("lvis_v0.5_train_common") == [(1, c), (3, c)]
    assert MetadataCatalog.get("lvis_v0.5_train_common").json_file.endswith(
        "lvis_v0.5_train_common.json")
    assert MetadataCatalog.get("lvis_v0.5_train_freq").json_file.endswith("lvis_v0.5_train.json")
    assert content("lvis_v0.5_train_shots") == [(1, f), (3, r)]
    assert DatasetCatalog.get("lvis_v0.5_train_shots")[0]["file_name"] == str(
        real_root / "coco" / "train2017" / "000000000001.jpg")
    record = DatasetCatalog.get("lvis_v0.5_train_rare")[0]
    assert record["file_name"] == str(real_root / "coco" / "train2017" / "000000000003.jpg")
    assert "not_exhaustive_category_ids" in record and "neg_category_ids" in record

    metadata = MetadataCatalog.get("lvis_v0.5_train_shots")
    assert metadata.thing_classes == list(LVIS_CLASSES) and len(LVIS_CLASSES) == 1230
    assert len(metadata.novel_classes) == 454 and len(metadata.base_classes) == 776
    assert {LVIS_FREQUENCY[LVIS_CLASS_IDS[n]] for n in metadata.novel_classes} == {"r"}
    assert {LVIS_FREQUENCY[LVIS_CLASS_IDS[n]] for n in metadata.base_classes} == {"f", "c"}
    assert metadata.evaluator_type == "lvis"
    novel = MetadataCatalog.get("lvis_v0.5_val_novel")
    assert novel.thing_classes == list(LVIS_NOVEL_CLASSES)
    rare_index = novel.thing_dataset_id_to_contiguous_id[r]
    val = DatasetCatalog.get("lvis_v0.5_val_novel")
    assert [(d["image_id"], [a["category_id"] for a in d["annotations"]]) for d in val] == [
        (1, [rare_index]), (2, []), (3, [])]
    assert val[0]["file_name"].startswith(str(real_root / "coco" / "val2017"))
