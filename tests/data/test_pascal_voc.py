"""Tolerant Pascal VOC loader: labelling-tool folders load into exact dicts; errors name files."""
import os

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.structures import BoxMode
from PIL import Image

from dynnet_d2.data.errors import DatasetFormatError, ImageReadError
from dynnet_d2.data.from_config import register_from_entries
from dynnet_d2.data.pascal_voc import load_voc_folder, register_voc_dataset

EXIF_ORIENTATION = 0x0112


def _object(name, box, difficult="", extra="<pose/><truncated/>"):
    """An <object>; ``box`` holds the four coordinate texts, None for no <bndbox>."""
    coordinates = zip(("xmin", "ymin", "xmax", "ymax"), box or ())
    bndbox = "" if box is None else (
        "<bndbox>" + "".join(f"<{k}>{v}</{k}>" for k, v in coordinates) + "</bndbox>"
    )
    difficult_tag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    return f"<object><name>{name}</name>{extra}{difficult_tag}{bndbox}</object>"


def _write_xml(folder, stem, objects, filename=None, size=None):
    """``size``: (width, height) texts, or None for no <size>."""
    size_tag = "" if size is None else (
        f"<size><width>{size[0]}</width><height>{size[1]}</height></size>"
    )
    filename_tag = "" if filename is None else f"<filename>{filename}</filename>"
    os.makedirs(folder / "Annotations", exist_ok=True)
    (folder / "Annotations" / f"{stem}.xml").write_text(
        f"<annotation>{filename_tag}{size_tag}{''.join(objects)}</annotation>"
    )


def _write_image(path, width, height, **save_args):
    os.makedirs(path.parent, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 200)).save(path, **save_args)


@pytest.fixture
def tool_folder(tmp_path):
    """A folder as a labelling tool writes it: images next to Annotations/, no ImageSets."""
    folder = tmp_path / "tool_voc"
    # <filename> says .jpg, the file is a PNG; float coordinates; empty <truncated/> and <pose/>.
    _write_image(folder / "a.png", 40, 30)
    _write_xml(folder, "a", [
        _object("dog", ("3.0", "5.5", "20.0", "25"), difficult=None),
        _object("cat", ("1", "1", "40", "30"), difficult="1"),
    ], filename="a.jpg", size=("40", "30"))
    # No <size>: read from the TIFF (upper-case extension); empty <difficult></difficult>.
    _write_image(folder / "b.TIF", 50, 20)
    _write_xml(folder, "b", [_object("bird", ("10", "2", "11", "2"))], filename=None)
    # <size> 0: read from the JPEG header, turned by its EXIF orientation 6 (90 degrees).
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    _write_image(folder / "c.jpg", 16, 12, exif=exif)
    _write_xml(folder, "c", [], filename="c.jpg", size=("0", "0"))
    return folder


def _expected(folder):
    ann = dict(bbox_mode=BoxMode.XYXY_ABS)
    return [
        {"file_name": str(folder / "a.png"), "image_id": "a", "height": 30, "width": 40,
         "annotations": [
             dict(ann, bbox=[2.0, 4.5, 20.0, 25.0], category_id=2, difficult=0),
             dict(ann, bbox=[0.0, 0.0, 40.0, 30.0], category_id=1, difficult=1),
         ]},
        {"file_name": str(folder / "b.TIF"), "image_id": "b", "height": 20, "width": 50,
         "annotations": [dict(ann, bbox=[9.0, 1.0, 11.0, 2.0], category_id=0, difficult=0)]},
        {"file_name": str(folder / "c.jpg"), "image_id": "c", "height": 16, "width": 12,
         "annotations": []},
    ]


def test_labelling_tool_folder_loads_exact_dicts(tool_folder):
    dicts = load_voc_folder(str(tool_folder))
    assert dicts == _expected(tool_folder)
    assert load_voc_folder(str(tool_folder), split="") == dicts
    for d in dicts:  # sizes agree with what training reads (EXIF orientation applied)
        assert read_image(d["file_name"]).shape[:2] == (d["height"], d["width"])


def test_split_name_and_split_path_keep_classes_of_all_xmls(tool_folder, tmp_path):
    expected = {d["image_id"]: d for d in _expected(tool_folder)}
    os.makedirs(tool_folder / "ImageSets" / "Main")
    (tool_folder / "ImageSets" / "Main" / "train.txt").write_text("b\n\na\n")
    dicts = load_voc_folder(str(tool_folder), "train")
    assert dicts == [expected["b"], expected["a"]]  # split-file order; class ids as for all XMLs
    elsewhere = tmp_path / "my_test.txt"
    elsewhere.write_text("c\n")
    assert load_voc_folder(str(tool_folder), str(elsewhere)) == [expected["c"]]


def test_images_in_jpegimages_and_given_class_list(tmp_path):
    folder = tmp_path / "voc"
    _write_image(folder / "JPEGImages" / "x.jpeg", 10, 10)
    _write_image(folder / "x.png", 10, 10)  # not used: JPEGImages/ exists
    _write_xml(folder, "x", [_object("cat", ("1", "1", "5", "5"), difficult="0")],
               size=("10", "10"))
    (dicts,) = load_voc_folder(str(folder), class_names=["dog", "cat"])
    assert dicts["file_name"] == str(folder / "JPEGImages" / "x.jpeg")
    assert dicts["annotations"][0]["category_id"] == 1


def test_missing_split_file_lists_existing_ones(tool_folder):
    with pytest.raises(FileNotFoundError, match="there is no split file") as e:
        load_voc_folder(str(tool_folder), str(tool_folder / "nope.txt"))
    assert str(tool_folder / "nope.txt") in str(e.value)
    os.makedirs(tool_folder / "ImageSets" / "Main")
    (tool_folder / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    (tool_folder / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    missing = str(tool_folder / "ImageSets" / "Main" / "test.txt")
    with pytest.raises(FileNotFoundError, match=r"\['train.txt', 'val.txt'\]") as e:
        load_voc_folder(str(tool_folder), "test")
    assert missing in str(e.value)


def test_split_id_without_xml_names_split_file(tool_folder):
    os.makedirs(tool_folder / "ImageSets" / "Main")
    split = tool_folder / "ImageSets" / "Main" / "train.txt"
    split.write_text("a\nzz\n")
    with pytest.raises(DatasetFormatError, match="'zz' has no annotation file") as e:
        load_voc_folder(str(tool_folder), "train")
    assert f"{split}:2" in str(e.value)


def test_unknown_class_names_xml_object_and_class_list(tool_folder):
    with pytest.raises(DatasetFormatError, match=r"'bird', which is not in the class list "
                                                 r"\['cat', 'dog'\]") as e:
        load_voc_folder(str(tool_folder), class_names=["cat", "dog"])
    assert str(tool_folder / "Annotations" / "b.xml") in str(e.value)


@pytest.mark.parametrize("obj,match", [
    (_object("dog", ("1", "abc", "5", "5")), r"\('dog'\) <bndbox><ymin> is 'abc'; expected a "),
    (_object("dog", ("1", "1", "", "5")), r"<bndbox><xmax> is ''; expected a number"),
    (_object("dog", ("9", "1", "5", "5")), r"<xmax> 5 < <xmin> 9"),
    (_object("dog", None), r"<object> 0 \('dog'\) has no <bndbox>"),
    (_object("dog", ("1", "1", "5", "5"), difficult="yes"), r"<difficult> is 'yes'"),
    ("<object><bndbox/></object>", r"<object> 0 has no <name>"),
    ("<object>", r"not a well-formed XML file"),
])
def test_bad_xml_names_file_and_field(tmp_path, obj, match):
    folder = tmp_path / "bad"
    _write_image(folder / "x.png", 10, 10)
    _write_xml(folder, "x", [obj], size=("10", "10"))
    with pytest.raises(DatasetFormatError, match=match) as e:
        load_voc_folder(str(folder), class_names=["dog"])
    assert str(folder / "Annotations" / "x.xml") in str(e.value)


def test_bad_size_names_file(tmp_path):
    folder = tmp_path / "bad_size"
    _write_image(folder / "x.png", 10, 10)
    _write_xml(folder, "x", [], size=("10.5", "8"))
    with pytest.raises(DatasetFormatError, match=r"x.xml: <size> is width='10.5' height='8'"):
        load_voc_folder(str(folder), class_names=["dog"])


def test_missing_image_names_xml_and_tried_names(tmp_path):
    folder = tmp_path / "no_image"
    _write_image(folder / "other.png", 10, 10)
    _write_xml(folder, "x", [], filename="photo.jpg", size=("10", "10"))
    with pytest.raises(ImageReadError, match=r"no image file in .*'photo.jpg', 'x.jpg', 'x.jpeg', "
                                             r"'x.png', 'x.tif', 'x.tiff', 'x.bmp'") as e:
        load_voc_folder(str(folder), class_names=["dog"])
    assert str(folder / "Annotations" / "x.xml") in str(e.value)


def test_register_sets_metadata_and_loads(tool_folder):
    classes = register_voc_dataset("user_voc_all", str(tool_folder))
    assert classes == ["bird", "cat", "dog"]
    meta = MetadataCatalog.get("user_voc_all")
    assert (meta.thing_classes, meta.evaluator_type, meta.dirname, meta.split, meta.year) == (
        ["bird", "cat", "dog"], "pascal_voc", str(tool_folder), "", 2007)
    assert DatasetCatalog.get("user_voc_all") == _expected(tool_folder)


def test_register_fails_at_once_on_bad_folder(tool_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        register_voc_dataset("user_voc_bad", str(tmp_path / "absent"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="has no Annotations/ directory"):
        register_voc_dataset("user_voc_bad", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="train.txt"):
        register_voc_dataset("user_voc_bad", str(tool_folder), "train")
    _write_xml(tmp_path / "no_objects", "x", [], size=("4", "4"))
    with pytest.raises(DatasetFormatError, match="no class list given"):
        register_voc_dataset("user_voc_bad", str(tmp_path / "no_objects"))
    assert "user_voc_bad" not in DatasetCatalog.list()


def test_register_from_config(tool_folder):
    os.makedirs(tool_folder / "ImageSets" / "Main")
    (tool_folder / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    register_from_entries("VOC_DATASETS", [
        ["cfg_voc_train", str(tool_folder), "train", ""],
        ("cfg_voc_all", str(tool_folder), "", ["dog", "cat", "bird", "fish"]),
    ])
    assert MetadataCatalog.get("cfg_voc_train").thing_classes == ["bird", "cat", "dog"]
    assert MetadataCatalog.get("cfg_voc_train").split == "train"
    assert [d["image_id"] for d in DatasetCatalog.get("cfg_voc_train")] == ["a"]
    assert MetadataCatalog.get("cfg_voc_all").thing_classes == ["dog", "cat", "bird", "fish"]
    assert len(DatasetCatalog.get("cfg_voc_all")) == 3


@pytest.mark.parametrize("entries,match", [
    (["v", "/data/voc", "", ""], r"VOC_DATASETS\[0\]='v': DATASETS.VOC_DATASETS must be a list "
                                 r"of \[name, folder, split, classes\] entries"),
    ([["v", "/data/voc", ""]], r"VOC_DATASETS\[0\]=\['v', '/data/voc', ''\]: .* must be a list of"),
    ([["", "/data/voc", "", ""]], r"VOC_DATASETS\[0\]=\['', '/data/voc', '', ''\]: .* must be"),
    ([["v", "/data/voc", "", "cat"]], r"entry 'v': classes 'cat' must be a list of class names"),
    ([["v", "/data/voc", None, ""]], r"entry 'v': split None must be a string"),
])
def test_config_entries_are_checked(entries, match):
    with pytest.raises(ValueError, match=match):
        register_from_entries("VOC_DATASETS", entries)
