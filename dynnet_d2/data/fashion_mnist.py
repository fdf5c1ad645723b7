"""Fashion-MNIST (Xiao et al. 2017): an IDX file reader and the registered names.

=======================  ================================================================
``fashion_mnist_train``  the 60,000 training images minus the calibration split (55,000)
``fashion_mnist_calib``  5,000 training images held out by a permutation with seed 0, for
                         calibrating IDK cascades (disjoint from ``fashion_mnist_train``)
``fashion_mnist_test``   the 10,000 test images
``fashion_mnist_fewshot_base_{train,calib}``  few-shot view (TAFE-Net, thesis Table 5.6
                         analogue): the images of the base classes only, labels over all 10;
                         :data:`FEWSHOT_NOVEL_COUNT` classes (drawn with seed 0) are novel; metadata
                         ``seen_classes`` (base), ``unseen_classes`` (novel)
=======================  ================================================================

Images are 1-channel 28x28 uint8 (``INPUT.FORMAT: "L"``), labels 0..9 in :data:`CLASSES` order.
The dataset dicts are array-backed classification records (:mod:`.classification`): they name
the IDX image file and the row in it, and keep the original index of the image in its IDX file,
so ``(record["array"], record["index"])`` identifies an image across the three names.

The folder is looked up when a name is loaded (never at import): ``$DYNNET_FASHION_MNIST``,
else ``$DYNNET_DATASETS/fashion-mnist`` (default ``./datasets``), else
``/usr/share/datasets/fashion-mnist``. Each file may be raw or gzip-compressed (``.gz``).
"""
import functools
import gzip
import os
import zlib
from pathlib import Path
from typing import List, Tuple

import numpy as np

from ..utils.env import datasets_root
from .catalog import register
from .errors import DatasetFormatError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
FOLDER_ENV = "DYNNET_FASHION_MNIST"
SYSTEM_FOLDER = "/usr/share/datasets/fashion-mnist"
# (images, labels) file names of each IDX split, without the optional ".gz".
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SIZE = 28
CALIB_SIZE = 5000
CALIB_SEED = 0
# The few-shot view: how many classes are novel, drawn with this seed.
FEWSHOT_NOVEL_COUNT = 4
FEWSHOT_NOVEL_SEED = 0
HOW_TO_GET = (
    "get Fashion-MNIST with `apt-get install dataset-fashion-mnist` (installs it in "
    f"{SYSTEM_FOLDER}), or download the four *-ubyte.gz files of "
    "https://github.com/zalandoresearch/fashion-mnist into $DYNNET_DATASETS/fashion-mnist, or set "
    f"{FOLDER_ENV} to the folder holding them"
)
# IDX magic numbers: two zero bytes, the data type (0x08 = unsigned byte), the number of dims.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_HEADER_DIMS = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}


def candidate_folders() -> List[Path]:
    """The folders searched, in order: only ``$DYNNET_FASHION_MNIST`` when it is set."""
    if os.environ.get(FOLDER_ENV):
        return [Path(os.environ[FOLDER_ENV])]
    return [Path(datasets_root()) / "fashion-mnist", Path(SYSTEM_FOLDER)]


def find_file(name: str) -> Path:
    """The file ``name`` (raw, else ``name.gz``) in the first candidate folder that has it."""
    folders = candidate_folders()
    for folder in folders:
        for path in (folder / name, folder / f"{name}.gz"):
            if path.is_file():
                return path
    searched = ", ".join(str(f / name) + "[.gz]" for f in folders)
    raise FileNotFoundError(f"Fashion-MNIST file {name}[.gz] not found (looked for {searched}); "
                            f"{HOW_TO_GET}")


def read_idx(path) -> np.ndarray:
    """The uint8 array stored in the IDX file ``path`` (gzip when it ends in ``.gz``), read-only
    and cached per process while the file is unchanged; ``DatasetFormatError`` naming the file
    when the magic number is not that of a Fashion-MNIST image or label file or the data are
    truncated or longer than the header says."""
    path = str(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"Fashion-MNIST file {path} does not exist; {HOW_TO_GET}") from e
    return _read_idx(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_idx(path: str, mtime_ns: int, size: int) -> np.ndarray:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DatasetFormatError(f"Fashion-MNIST file {path} is not a complete gzip file "
                                 f"({type(e).__name__}: {e}); {HOW_TO_GET}") from e
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic not in _HEADER_DIMS:
        raise DatasetFormatError(
            f"Fashion-MNIST file {path} starts with magic number "
            f"{'none (file shorter than 4 bytes)' if magic is None else hex(magic)}; expected "
            f"{IMAGES_MAGIC:#010x} (images) or {LABELS_MAGIC:#010x} (labels); {HOW_TO_GET}")
    ndim = _HEADER_DIMS[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f"Fashion-MNIST file {path} is truncated: {len(data)} bytes, "
                                 f"shorter than its {header}-byte header; {HOW_TO_GET}")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise DatasetFormatError(
            f"Fashion-MNIST file {path} is {problem}: the header declares shape {shape}, i.e. "
            f"{expected} bytes in all, but the (decompressed) file has {len(data)}; {HOW_TO_GET}")
    array = np.frombuffer(data, np.uint8, offset=header).reshape(shape)
    array.flags.writeable = False
    return array


def load_split_arrays(split: str) -> Tuple[Path, np.ndarray, np.ndarray]:
    """``(image file, images (N,28,28), labels (N,))`` of ``split`` ("train", or "test" for the
    t10k files), checked to be Fashion-MNIST images with one label 0..9 each."""
    image_name, label_name = FILES[split]
    image_path, label_path = find_file(image_name), find_file(label_name)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetFormatError(f"Fashion-MNIST file {image_path} holds an array of shape "
                                 f"{images.shape}; expected (N, {IMAGE_SIZE}, {IMAGE_SIZE}) images")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetFormatError(
            f"Fashion-MNIST file {label_path} holds an array of shape {labels.shape}; expected "
            f"({len(images)},), one label per image of {image_path}")
    if labels.size and labels.max() >= len(CLASSES):
        raise DatasetFormatError(f"Fashion-MNIST file {label_path} has label {labels.max()}; "
                                 f"expected 0..{len(CLASSES) - 1}")
    return image_path, images, labels


def calib_split(num_train: int) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train indices, calibration indices)`` of ``num_train`` training images: the
    first :data:`CALIB_SIZE` of a permutation with seed :data:`CALIB_SEED` are the calibration
    split."""
    if num_train <= CALIB_SIZE:
        raise DatasetFormatError(f"Fashion-MNIST training set has {num_train} images; the "
                                 f"calibration split needs more than {CALIB_SIZE}")
    perm = np.random.RandomState(CALIB_SEED).permutation(num_train)
    return np.sort(perm[CALIB_SIZE:]), np.sort(perm[:CALIB_SIZE])


def load_fashion_mnist(name: str) -> List[dict]:
    """Dataset dicts of ``fashion_mnist_{train,calib,test}``; ``image_id`` and ``index`` are the
    image's index in its IDX file."""
    part = name[len("fashion_mnist_"):]
    source = "test" if part == "test" else "train"
    image_path, _, labels = load_split_arrays(source)
    if part == "test":
        indices = np.arange(len(labels))
    else:
        train, calib = calib_split(len(labels))
        indices = train if part == "train" else calib
    array = ("idx", str(image_path))
    return [{"image_id": int(i), "index": int(i), "label": int(labels[i]), "array": array,
             "height": IMAGE_SIZE, "width": IMAGE_SIZE} for i in indices]


def fewshot_novel_classes() -> List[str]:
    """The novel classes of the few-shot view, in :data:`CLASSES` order."""
    drawn = np.random.RandomState(FEWSHOT_NOVEL_SEED).choice(len(CLASSES), FEWSHOT_NOVEL_COUNT,
                                                             replace=False)
    return [CLASSES[i] for i in sorted(drawn)]


def load_base_images(name: str) -> List[dict]:
    """The records of ``name`` (a ``fashion_mnist_*`` split) of the base classes only."""
    novel = {CLASSES.index(c) for c in fewshot_novel_classes()}
    return [r for r in load_fashion_mnist(name) if r["label"] not in novel]


def register_fashion_mnist() -> None:
    """Register ``fashion_mnist_{train,calib,test}`` and the few-shot base views (files are read
    only when loaded)."""
    novel = fewshot_novel_classes()
    for part, source in (("train", "train"), ("calib", "train"), ("test", "test")):
        name = f"fashion_mnist_{part}"
        register(name, functools.partial(load_fashion_mnist, name), thing_classes=list(CLASSES),
                 evaluator_type="classification", source_split=source, image_format="L")
        if part != "test":
            register(f"fashion_mnist_fewshot_base_{part}",
                     functools.partial(load_base_images, name), thing_classes=list(CLASSES),
                     seen_classes=[c for c in CLASSES if c not in novel], unseen_classes=novel,
                     evaluator_type="classification", source_split=source, image_format="L")
