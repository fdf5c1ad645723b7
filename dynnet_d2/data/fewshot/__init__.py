"""Few-shot data (TFA's protocol): exact K-shot sampling, TFA's split-file formats, K-shot
datasets and their registered names. See :mod:`.sampling`, :mod:`.split_files`,
:mod:`.datasets`."""
from .datasets import (
    COCO_SHOTS,
    VOC_SHOTS,
    class_view,
    ensure_split_files,
    kshot_dicts_from_coco_splits,
    kshot_dicts_from_voc_splits,
    load_kshot_from_source,
    register_kshot_datasets,
)
from .sampling import FewShotSamplingError, pool_from_coco, pool_from_dicts, sample_fewshot
from .split_files import read_coco_split, read_voc_split, write_coco_split, write_voc_split

__all__ = [
    "COCO_SHOTS", "VOC_SHOTS", "class_view", "ensure_split_files", "kshot_dicts_from_coco_splits",
    "kshot_dicts_from_voc_splits", "load_kshot_from_source", "register_kshot_datasets",
    "FewShotSamplingError", "pool_from_coco", "pool_from_dicts", "sample_fewshot",
    "read_coco_split", "read_voc_split", "write_coco_split", "write_voc_split",
]
