"""Register the user datasets a config declares, from every entry point, once per process.

``DATASETS.COCO_JSON_DATASETS``: ``[[name, json_file, image_root], ...]``;
``DATASETS.VOC_DATASETS``: ``[[name, folder, split, classes], ...]`` (split ``""`` = every XML,
classes ``""`` = the names found in the folder's XMLs); then ``DATASETS.FEWSHOT``
(:mod:`dynnet_d2.data.fewshot.custom`). An entry already registered from the same
values is skipped, so the trainer, ``--eval-only`` and ``test`` can all call
:func:`register_datasets_from_config` without reading the annotations again.
"""
from typing import Any, Dict, List, Sequence

from detectron2.data import DatasetCatalog

from .coco_format import register_coco_json_dataset
from .fewshot.custom import register_fewshot_from_config
from .pascal_voc import register_voc_config_entry

# name -> the config entry it was registered from.
_REGISTERED: Dict[str, List[Any]] = {}


# config key -> (the fields of one entry, example, how to register one entry)
DATASET_KEYS: Dict[str, tuple] = {
    "COCO_JSON_DATASETS": (("name", "json_file", "image_root"),
                           "[['my_train', '/data/train.json', '/data/images']]",
                           register_coco_json_dataset),
    "VOC_DATASETS": (("name", "folder", "split", "classes"),
                     "[['my_train', '/data/VOC', 'train', ['cat', 'dog']]]",
                     register_voc_config_entry),
}


def _check_entry(key: str, i: int, entry: Any, fields: Sequence[str], example: str) -> None:
    if isinstance(entry, str) or not isinstance(entry, (list, tuple)) or len(entry) != len(fields) \
            or not all(isinstance(v, str) and v for v in entry[:2]):
        raise ValueError(
            f"DATASETS.{key}[{i}]={entry!r}: DATASETS.{key} must be a list of "
            f"[{', '.join(fields)}] entries, e.g. {example}"
        )


def register_from_entries(key: str, entries: Sequence[Any]) -> None:
    """Register every entry of ``DATASETS.<key>`` not registered from the same values before."""
    fields, example, register = DATASET_KEYS[key]
    for i, entry in enumerate(entries):
        _check_entry(key, i, entry, fields, example)
        name = entry[0]
        if _REGISTERED.get(name) == list(entry) and name in DatasetCatalog.list():
            continue
        register(*entry)
        _REGISTERED[name] = list(entry)


def register_datasets_from_config(cfg) -> None:
    """Register the datasets of ``DATASETS.COCO_JSON_DATASETS`` and ``DATASETS.VOC_DATASETS``,
    then the few-shot datasets ``DATASETS.FEWSHOT`` derives from them."""
    for key in DATASET_KEYS:
        register_from_entries(key, cfg.DATASETS[key])
    register_fewshot_from_config(cfg)

