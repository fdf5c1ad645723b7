"""Image classification data: record formats, the mapper and the data loaders.

The base of the classifiers of the thesis (SkipNet ch. 2, IDK cascades, DeepMoE, TAFE-Net).
Datasets are Detectron2 dataset dicts of one of two kinds; both have ``image_id``, ``label``
(0..C-1, indexing the dataset's ``thing_classes``), ``height`` and ``width`` (of the source):

* array-backed: ``"array": (reader, argument)`` and ``"index": i`` -- image ``i`` of the array
  ``ARRAY_READERS[reader](argument)`` (N, H, W) uint8 grayscale, read once per process. The
  record itself stays small, so the 60k records of Fashion-MNIST serialize cheaply.
* image file with a crop box: ``"file_name"`` and ``"crop_box"`` (XYXY, absolute pixels, may
  extend beyond the image, which is zero-filled there); the crop is resized to
  ``INPUT.CLASSIFICATION.CROP_SIZE`` squared.

:class:`ClassificationMapper` turns a record into ``{"image": uint8 tensor (C, H, W), "label",
"image_id", "height", "width"}`` (``height``/``width`` of the returned image; C = 1 for
``INPUT.FORMAT`` "L", else 3). Training augmentation draws from NumPy's global RNG, as
Detectron2's augmentations do, so the loader's per-worker seeding makes it reproducible.
"""
from typing import Any, Callable, Dict, List

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import (
    DatasetCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.data import transforms as T
from detectron2.data.detection_utils import SizeMismatchError, check_image_size, read_image
from PIL import Image

from .classification_builtin import digit_images
from .errors import DatasetFormatError, ImageReadError
from .fashion_mnist import read_idx

# reader name -> function of the record's argument returning the (N, H, W) uint8 array.
ARRAY_READERS: Dict[str, Callable[[str], np.ndarray]] = {
    "idx": read_idx,  # argument: path of an IDX image file (Fashion-MNIST)
    "sklearn_digits": lambda _: digit_images(),  # argument unused
}
IMAGE_FORMATS = ("L", "BGR", "RGB")
FLIPS = ("none", "horizontal", "vertical")


def shift_image(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` (H, W, C) translated by ``dx`` pixels right and ``dy`` down, zero-filled."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


class ClassificationMapper:
    """Record -> model input of an image classifier (see the module docstring).

    Training: with ``flip`` "horizontal" ("vertical") Detectron2's ``RandomFlip`` flips with
    probability 0.5, then the image is shifted by ``(dx, dy)`` drawn uniformly from
    ``[-shift, shift]^2`` with ``np.random.randint`` (zero padding). Testing: neither.
    """

    @configurable
    def __init__(self, *, is_train: bool, shift: int, flip: str, crop_size: int,
                 image_format: str):
        """
        Args:
            is_train: training (augmentation) or testing.
            shift: largest random translation in pixels (training).
            flip: Detectron2's ``INPUT.RANDOM_FLIP`` ("none", "horizontal", "vertical").
            crop_size: side of the square crops of detection records (shapes_cls_*).
            image_format: Detectron2's ``INPUT.FORMAT`` of the images.
        """
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"INPUT.FORMAT={image_format!r} is not supported by the "
                             f"classification mapper; expected one of {IMAGE_FORMATS}")
        if flip not in FLIPS:
            raise ValueError(f"INPUT.RANDOM_FLIP={flip!r}; expected one of {FLIPS}")
        if shift < 0:
            raise ValueError(f"INPUT.CLASSIFICATION.SHIFT={shift}; expected an integer >= 0")
        if crop_size < 1:
            raise ValueError(f"INPUT.CLASSIFICATION.CROP_SIZE={crop_size}; expected >= 1")
        self.is_train = is_train
        self.shift = shift
        self.flip = None if flip == "none" else T.RandomFlip(
            prob=0.5, horizontal=flip == "horizontal", vertical=flip == "vertical")
        self.crop_size = crop_size
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        return {
            "is_train": is_train,
            "shift": cfg.INPUT.CLASSIFICATION.SHIFT,
            "flip": cfg.INPUT.RANDOM_FLIP,
            "crop_size": cfg.INPUT.CLASSIFICATION.CROP_SIZE,
            "image_format": cfg.INPUT.FORMAT,
        }

    def read(self, record: Dict[str, Any]) -> np.ndarray:
        """The record's image, (H, W, C) uint8 in ``image_format``, before augmentation."""
        if "array" in record:
            reader, argument = record["array"]
            if reader not in ARRAY_READERS:
                raise DatasetFormatError(
                    f"classification record (image_id {record.get('image_id')!r}) has array "
                    f"reader {reader!r}; expected one of {sorted(ARRAY_READERS)}")
            image = ARRAY_READERS[reader](argument)[record["index"]][:, :, None]
            return image if self.image_format == "L" else np.repeat(image, 3, axis=2)
        if "file_name" not in record or "crop_box" not in record:
            raise DatasetFormatError(
                f"classification record (image_id {record.get('image_id')!r}) has keys "
                f"{sorted(record)}; expected 'array' and 'index', or 'file_name' and 'crop_box'")
        try:
            image = read_image(record["file_name"], format=self.image_format)
            check_image_size(record, image)
        except (OSError, SizeMismatchError) as e:
            raise ImageReadError(f"cannot use image {record['file_name']!r} (image_id "
                                 f"{record.get('image_id')!r}): {type(e).__name__}: {e}") from e
        crop = T.ExtentTransform(record["crop_box"], (self.crop_size, self.crop_size),
                                 interp=Image.BILINEAR, fill=0)
        return crop.apply_image(image)

    def __call__(self, record: Dict[str, Any]) -> Dict[str, Any]:
        image = self.read(record)
        if self.is_train:
            if self.flip is not None:
                image = self.flip.get_transform(image).apply_image(image)
            if self.shift:
                dx, dy = np.random.randint(-self.shift, self.shift + 1, size=2)
                image = shift_image(image, int(dx), int(dy))
        return {
            "image": torch.from_numpy(np.array(image.transpose(2, 0, 1), order="C")),
            "label": int(record["label"]),
            "image_id": record["image_id"],
            "height": image.shape[0],
            "width": image.shape[1],
        }


def build_classification_train_loader(cfg, dataset_dicts: List[dict]):
    """Detectron2's training loader (infinite, shuffled, ``SOLVER.IMS_PER_BATCH`` images over
    all ranks) of ``dataset_dicts`` mapped by the training :class:`ClassificationMapper`;
    batches are lists of mapped dicts."""
    return build_detection_train_loader(
        dataset=dataset_dicts, mapper=ClassificationMapper(cfg, is_train=True),
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH, aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


def build_classification_test_loader(cfg, dataset_name: str):
    """Detectron2's inference loader of ``dataset_name`` (each image once over all ranks,
    ``TEST.IMS_PER_BATCH`` per batch and rank) mapped by the test :class:`ClassificationMapper`."""
    return build_detection_test_loader(
        dataset=DatasetCatalog.get(dataset_name), mapper=ClassificationMapper(cfg, is_train=False),
        batch_size=cfg.TEST.IMS_PER_BATCH, num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


def map_for_inference(cfg, dataset_name: str, limit: int = 0) -> List[dict]:
    """The records of ``dataset_name`` (its first ``limit``; all when 0) mapped by ``cfg``'s test
    :class:`ClassificationMapper`, in dataset order."""
    mapper = ClassificationMapper(cfg, is_train=False)
    records = DatasetCatalog.get(dataset_name)
    return [mapper(r) for r in (records[:limit] if limit else records)]


def image_tensors(cfg, dataset_name: str):
    """``(images (N, C, H, W) uint8, labels (N,))`` of :func:`map_for_inference`."""
    mapped = map_for_inference(cfg, dataset_name)
    return (torch.stack([m["image"] for m in mapped]),
            torch.tensor([m["label"] for m in mapped]))
