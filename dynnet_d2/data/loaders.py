"""Detection data loaders of dynnet_d2's trainers: Detectron2's loaders with the
:class:`~dynnet_d2.data.mappers.CheckedDatasetMapper` (clear errors for unreadable images,
partial masks). The classification loaders are in :mod:`dynnet_d2.data.classification`."""
from typing import List

from detectron2.data import build_detection_test_loader, build_detection_train_loader

from .mappers import CheckedDatasetMapper


def build_detection_loader_for_training(cfg, dataset_dicts: List[dict]):
    """Detectron2's training loader of the prepared ``dataset_dicts``
    (:func:`~dynnet_d2.data.build.training_dataset_dicts`)."""
    return build_detection_train_loader(cfg, mapper=CheckedDatasetMapper(cfg, is_train=True),
                                        dataset=dataset_dicts)


def build_detection_loader_for_test(cfg, dataset_name: str):
    """Detectron2's inference loader of ``dataset_name``."""
    return build_detection_test_loader(cfg, dataset_name,
                                       mapper=CheckedDatasetMapper(cfg, is_train=False))
