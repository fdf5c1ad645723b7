"""Classification data: the Fashion-MNIST IDX reader and names, digits, the shapes crop view,
the mapper's crops and augmentations, and the loaders."""
import gzip
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from dynnet_d2.config import get_dynnet_cfg
from dynnet_d2.data import (
    ClassificationMapper,
    build_classification_test_loader,
    build_classification_train_loader,
)
from dynnet_d2.data.classification import ARRAY_READERS, shift_image
from dynnet_d2.data.classification_builtin import crop_box
from dynnet_d2.data.errors import DatasetFormatError, ImageReadError
from dynnet_d2.data.fashion_mnist import CLASSES, read_idx

APT = "apt-get install dataset-fashion-mnist"
NUM_FAKE_TRAIN = 5012  # the calibration split takes 5000, leaving 12 for fashion_mnist_train
NUM_FAKE_TEST = 7


def _idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write(path, data: bytes) -> None:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)


def _fake_images(n: int) -> np.ndarray:
    """n 28x28 images; image i holds i % 256 and i // 256 in its first two pixels."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    images[:, 0, 1] = np.arange(n) // 256
    return images


@pytest.fixture(scope="module")
def fake_fashion(tmp_path_factory):
    """A fake Fashion-MNIST folder: gzip train files, raw test files; label of image i = i % 10."""
    folder = tmp_path_factory.mktemp("fashion")
    for prefix, n, ext in (("train", NUM_FAKE_TRAIN, ".gz"), ("t10k", NUM_FAKE_TEST, "")):
        _write(folder / f"{prefix}-images-idx3-ubyte{ext}", _idx_bytes(0x803, _fake_images(n)))
        _write(folder / f"{prefix}-labels-idx1-ubyte{ext}",
               _idx_bytes(0x801, np.arange(n) % 10))
    return folder


# ---- IDX reader ----

@pytest.mark.parametrize("name", ["labels-idx1-ubyte", "labels-idx1-ubyte.gz"])
def test_idx_round_trip_of_hand_written_bytes(tmp_path, name):
    _write(tmp_path / name, b"\x00\x00\x08\x01" b"\x00\x00\x00\x03" b"\x07\x00\x09")
    assert read_idx(tmp_path / name).tolist() == [7, 0, 9]
    images = b"\x00\x00\x08\x03" b"\x00\x00\x00\x02" b"\x00\x00\x00\x02" b"\x00\x00\x00\x03"
    _write(tmp_path / f"im{name}", images + bytes(range(12)))
    assert read_idx(tmp_path / f"im{name}").tolist() == [[[0, 1, 2], [3, 4, 5]],
                                                         [[6, 7, 8], [9, 10, 11]]]


@pytest.mark.parametrize("name, data, message", [
    ("train-labels-idx1-ubyte", b"\x00\x00\x08\x01" b"\x00\x00\x00\x03" b"\x07\x00",
     f"is truncated: the header declares shape \\(3,\\).*{APT}"),
    ("long-idx1-ubyte", b"\x00\x00\x08\x01" b"\x00\x00\x00\x01" b"\x07\x00",
     "is longer than its header says"),
    ("wrong-magic", b"\x00\x00\x0d\x01" b"\x00\x00\x00\x01" b"\x07",
     "starts with magic number 0xd01"),
])
def test_malformed_idx_files_are_named(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DatasetFormatError, match=f"{tmp_path / name} {message}"):
        read_idx(tmp_path / name)


def test_cut_gzip_file_is_named(tmp_path):
    cut_gz = tmp_path / "t10k-labels-idx1-ubyte.gz"
    cut_gz.write_bytes(gzip.compress(_idx_bytes(0x801, np.arange(1000) % 10))[:40])
    with pytest.raises(DatasetFormatError, match=f"{cut_gz} is not a complete gzip file.*{APT}"):
        read_idx(cut_gz)


def test_missing_fashion_mnist_names_the_file_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNNET_FASHION_MNIST", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/t10k-images-idx3-ubyte.*{APT}"):
        DatasetCatalog.get("fashion_mnist_test")


def test_truncated_fashion_mnist_file_is_named(fake_fashion, tmp_path, monkeypatch):
    for f in fake_fashion.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cut = tmp_path / "t10k-images-idx3-ubyte"
    cut.write_bytes(cut.read_bytes()[:-1])
    monkeypatch.setenv("DYNNET_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DatasetFormatError, match=f"{cut} is truncated: .*shape \\(7, 28, 28\\)"):
        DatasetCatalog.get("fashion_mnist_test")


# ---- registered names ----

def test_fashion_mnist_names_from_fake_files(fake_fashion, monkeypatch):
    monkeypatch.setenv("DYNNET_FASHION_MNIST", str(fake_fashion))
    train, calib, test = (DatasetCatalog.get(f"fashion_mnist_{p}")
                          for p in ("train", "calib", "test"))
    assert (len(train), len(calib), len(test)) == (12, 5000, NUM_FAKE_TEST)
    train_idx, calib_idx = [r["index"] for r in train], [r["index"] for r in calib]
    assert sorted(train_idx + calib_idx) == list(range(NUM_FAKE_TRAIN))  # disjoint, complete
    expected_calib = np.random.RandomState(0).permutation(NUM_FAKE_TRAIN)[:5000]
    assert calib_idx == sorted(expected_calib.tolist())
    assert [r["index"] for r in DatasetCatalog.get("fashion_mnist_calib")] == calib_idx
    assert [r["index"] for r in test] == list(range(NUM_FAKE_TEST))
    assert all(r["label"] == r["index"] % 10 and r["image_id"] == r["index"]
               for r in train + calib + test)
    assert train[0]["array"] == ("idx", str(fake_fashion / "train-images-idx3-ubyte.gz"))
    meta = MetadataCatalog.get("fashion_mnist_calib")
    assert (meta.thing_classes, meta.evaluator_type, meta.source_split) == (
        list(CLASSES), "classification", "train")
    assert len(CLASSES) == 10 and CLASSES[0] == "T-shirt/top" and CLASSES[9] == "Ankle boot"
    mapper = ClassificationMapper(is_train=False, shift=0, flip="none", crop_size=32,
                                  image_format="L")
    for record in (train[-1], calib[123], test[5]):
        out = mapper(record)
        assert out["image"].shape == (1, 28, 28)
        assert out["image"][0, 0, :2].tolist() == [record["index"] % 256, record["index"] // 256]


def test_the_fewshot_base_views_leave_the_seeded_novel_classes_out(fake_fashion, monkeypatch):
    from dynnet_d2.data.fashion_mnist import fewshot_novel_classes
    monkeypatch.setenv("DYNNET_FASHION_MNIST", str(fake_fashion))
    novel = fewshot_novel_classes()
    expected = sorted(np.random.RandomState(0).choice(10, 4, replace=False).tolist())
    assert novel == [CLASSES[i] for i in expected]
    for part in ("train", "calib"):
        meta = MetadataCatalog.get(f"fashion_mnist_fewshot_base_{part}")
        assert meta.unseen_classes == novel and len(meta.seen_classes) == 6
        every = DatasetCatalog.get(f"fashion_mnist_{part}")
        base = DatasetCatalog.get(f"fashion_mnist_fewshot_base_{part}")
        assert base == [r for r in every if r["label"] not in expected]


@pytest.mark.skipif(not os.path.isfile("/usr/share/datasets/fashion-mnist/"
                                       "train-images-idx3-ubyte.gz"),
                    reason="real Fashion-MNIST files are not installed here")
def test_real_fashion_mnist_sizes(monkeypatch):
    monkeypatch.setenv("DYNNET_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    sizes = {p: len(DatasetCatalog.get(f"fashion_mnist_{p}")) for p in ("train", "calib", "test")}
    assert sizes == {"train": 55000, "calib": 5000, "test": 10000}


def test_digits_split_and_pixel_scaling():
    from sklearn.datasets import load_digits

    train, test = DatasetCatalog.get("digits_train"), DatasetCatalog.get("digits_test")
    assert (len(train), len(test)) == (1497, 300)
    assert sorted(r["index"] for r in train + test) == list(range(1797))
    assert MetadataCatalog.get("digits_test").thing_classes == [str(d) for d in range(10)]
    digits = load_digits()
    mapper = ClassificationMapper(is_train=False, shift=0, flip="none", crop_size=32,
                                  image_format="L")
    record = test[0]
    out = mapper(record)["image"][0].numpy()
    raw = digits.images[record["index"]]
    assert record["label"] == digits.target[record["index"]]
    # 0..16 -> 0..255 rounded: hand values 0 -> 0, 2 -> 32, 4 -> 64, 8 -> 128, 16 -> 255.
    for value, scaled in ((0, 0), (2, 32), (4, 64), (8, 128), (16, 255)):
        assert (out[raw == value] == scaled).all()
    assert out.shape == (8, 8) and (raw == 16).any() and (raw == 0).any()


def test_shapes_cls_records_are_the_non_crowd_instances():
    source = DatasetCatalog.get("shapes_test")
    anns = [(im, a) for im in source for a in im["annotations"] if not a.get("iscrowd", 0)]
    records = DatasetCatalog.get("shapes_cls_test")
    assert len(records) == len(anns) > 0
    assert [r["label"] for r in records] == [a["category_id"] for _, a in anns]
    assert [r["image_id"] for r in records] == list(range(len(records)))
    im, a = anns[0]
    assert records[0]["file_name"] == im["file_name"]
    assert records[0]["crop_box"] == crop_box(a["bbox"], a["bbox_mode"], im["height"], im["width"])
    meta = MetadataCatalog.get("shapes_cls_train")
    assert len(meta.thing_classes) == 20 and meta.evaluator_type == "classification"
    mapper = ClassificationMapper(is_train=True, shift=2, flip="horizontal", crop_size=16,
                                  image_format="BGR")
    out = mapper(records[0])
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, 16, 16)


def test_crop_box_widens_by_a_tenth_and_clips():
    # XYWH (10, 20, 30, 40): XYXY (10, 20, 40, 60) widened by 3 and 4 -> (7, 16, 43, 64).
    assert crop_box([10, 20, 30, 40], BoxMode.XYWH_ABS, 100, 100) == pytest.approx([7, 16, 43, 64])
    # XYXY (1, 2, 31, 42) widened -> (-2, -2, 34, 46), clipped to a 45-high, 33-wide image.
    assert crop_box([1, 2, 30, 40], BoxMode.XYWH_ABS, 45, 33) == pytest.approx([0, 0, 33, 45])


# ---- mapper ----

IMAGE = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.uint8)


@pytest.fixture
def array_record(monkeypatch):
    monkeypatch.setitem(ARRAY_READERS, "hand", lambda _: IMAGE[None])
    return {"image_id": 5, "index": 0, "label": 3, "array": ("hand", ""), "height": 3,
            "width": 3}


def test_shift_image_by_hand():
    # dx=1 (right), dy=-1 (up): out[y, x] = in[y + 1, x - 1], zero where that is outside.
    assert shift_image(IMAGE[:, :, None], 1, -1)[:, :, 0].tolist() == [[0, 4, 5], [0, 7, 8],
                                                                      [0, 0, 0]]
    assert shift_image(IMAGE[:, :, None], -2, 0)[:, :, 0].tolist() == [[3, 0, 0], [6, 0, 0],
                                                                      [9, 0, 0]]
    assert not shift_image(IMAGE[:, :, None], 3, 0).any()


def test_mapper_test_mode_and_formats(array_record):
    gray = ClassificationMapper(is_train=False, shift=1, flip="horizontal", crop_size=32,
                                image_format="L")
    out = gray(array_record)
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (1, 3, 3)
    assert out["image"][0].tolist() == IMAGE.tolist()  # no augmentation at test time
    assert (out["label"], out["image_id"], out["height"], out["width"]) == (3, 5, 3, 3)
    bgr = ClassificationMapper(is_train=False, shift=0, flip="none", crop_size=32,
                               image_format="BGR")
    assert bgr(array_record)["image"].tolist() == [IMAGE.tolist()] * 3


def test_mapper_training_flip_and_shift_follow_numpy_rng(array_record):
    mapper = ClassificationMapper(is_train=True, shift=1, flip="horizontal", crop_size=32,
                                  image_format="L")
    seen = set()
    for seed in range(20):
        np.random.seed(seed)
        flip = np.random.uniform(0, 1) < 0.5  # Detectron2's RandomFlip(prob=0.5) draw
        dx, dy = np.random.randint(-1, 2, size=2)
        np.random.seed(seed)
        out = mapper(array_record)["image"][0].numpy()
        image = IMAGE[:, ::-1] if flip else IMAGE
        assert out.tolist() == shift_image(image[:, :, None], dx, dy)[:, :, 0].tolist()
        seen.add((bool(flip), int(dx), int(dy)))
    assert {f for f, _, _ in seen} == {True, False} and len(seen) >= 6
    # One case by hand: with seed 1 the first uniform draw is 0.417 < 0.5, so it flips.
    vflip = ClassificationMapper(is_train=True, shift=0, flip="vertical", crop_size=32,
                                 image_format="L")
    np.random.seed(1)
    assert vflip(array_record)["image"][0].tolist() == [[7, 8, 9], [4, 5, 6], [1, 2, 3]]


def test_crop_record_crops_resizes_and_names_missing_files(tmp_path):
    rgb = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    Image.fromarray(rgb).save(tmp_path / "im.png")
    record = {"image_id": 0, "label": 1, "file_name": str(tmp_path / "im.png"), "height": 4,
              "width": 4, "crop_box": [1, 0, 3, 2]}
    mapper = ClassificationMapper(is_train=False, shift=0, flip="none", crop_size=2,
                                  image_format="BGR")
    out = mapper(record)["image"].numpy()
    assert out.tolist() == rgb[0:2, 1:3, ::-1].transpose(2, 0, 1).tolist()  # same-size crop, BGR
    # A box beyond the image: the part outside is zero; 4x4 box at (2, 2) -> pixels [2:4, 2:4].
    mapper4 = ClassificationMapper(is_train=False, shift=0, flip="none", crop_size=4,
                                   image_format="BGR")
    out = mapper4(dict(record, crop_box=[2, 2, 6, 6]))["image"].numpy()
    assert out[:, :2, :2].tolist() == rgb[2:4, 2:4, ::-1].transpose(2, 0, 1).tolist()
    assert not out[:, 2:, :].any() and not out[:, :, 2:].any()
    missing = dict(record, file_name=str(tmp_path / "nope.png"))
    with pytest.raises(ImageReadError, match="nope.png"):
        mapper(missing)
    with pytest.raises(ImageReadError, match="im.png.*Mismatched image shape"):
        mapper(dict(record, height=5))


def test_mapper_config_and_bad_values():
    cfg = get_dynnet_cfg()
    cfg.INPUT.FORMAT, cfg.INPUT.CLASSIFICATION.SHIFT, cfg.INPUT.RANDOM_FLIP = "L", 4, "none"
    mapper = ClassificationMapper(cfg, is_train=True)
    assert (mapper.shift, mapper.flip, mapper.crop_size, mapper.image_format) == (
        4, None, 32, "L")
    with pytest.raises(ValueError, match="INPUT.FORMAT='YUV-BT.601'"):
        ClassificationMapper(is_train=True, shift=0, flip="none", crop_size=8,
                             image_format="YUV-BT.601")
    with pytest.raises(ValueError, match="INPUT.RANDOM_FLIP='diagonal'"):
        ClassificationMapper(is_train=True, shift=0, flip="diagonal", crop_size=8,
                             image_format="L")


# ---- loaders ----

def test_loaders_batch_lists_of_mapped_dicts():
    cfg = get_dynnet_cfg()
    cfg.INPUT.FORMAT = "L"
    cfg.SOLVER.IMS_PER_BATCH, cfg.TEST.IMS_PER_BATCH, cfg.DATALOADER.NUM_WORKERS = 4, 64, 0
    batch = next(iter(build_classification_train_loader(cfg, DatasetCatalog.get("digits_train"))))
    assert len(batch) == 4 and all(d["image"].shape == (1, 8, 8) for d in batch)
    ids = [d["image_id"] for b in build_classification_test_loader(cfg, "digits_test") for d in b]
    assert sorted(ids) == sorted(r["image_id"] for r in DatasetCatalog.get("digits_test"))


def test_inference_mapping_of_a_whole_dataset():
    from dynnet_d2.config import load_config
    from dynnet_d2.data.classification import image_tensors, map_for_inference

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = load_config(os.path.join(repo, "configs", "Classification",
                                   "classifier_R8cifar_200it_digits.yaml"))
    records = DatasetCatalog.get("digits_test")
    by_hand = [ClassificationMapper(cfg, is_train=False)(r) for r in records[:4]]
    first = map_for_inference(cfg, "digits_test", limit=4)
    assert [m["image_id"] for m in first] == [m["image_id"] for m in by_hand]
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, by_hand))
    images, labels = image_tensors(cfg, "digits_test")
    assert images.shape == (len(records), 1, 8, 8) and images.dtype == torch.uint8
    assert torch.equal(images[:4], torch.stack([m["image"] for m in by_hand]))
    assert labels.tolist() == [r["label"] for r in records]
