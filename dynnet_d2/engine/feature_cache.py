"""Pooled-feature caches (``MODEL.CLASSIFIER.CACHE_FEATURES``): the head of an
``ImageClassifier`` on a frozen backbone trained and evaluated from the backbone's pooled
features, computed once per dataset and stored, so the head trains in seconds (TAFE-Net's
protocol on precomputed features, thesis ch. 5, and the baselines it is compared with).

Each image of a dataset goes once through the test mapper (no augmentation) and the frozen
backbone; its pooled ``MODEL.CLASSIFIER.IN_FEATURE`` output is the row ``(C,)`` the head sees,
what :meth:`~dynnet_d2.modeling.classifier.ImageClassifier.pooled_features` computes end to end,
so a head gives the same logits on both paths. A cache file,
``<cache root>/classifier/<key>/<dataset>-<records hash>.pt``, holds ``features`` ``(N, C)``
float32, ``labels`` ``(N,)``, ``image_ids`` ``(N,)`` and its ``key``, which hashes the backbone's
weights, the pixel normalization, the pooled feature's name and the ``INPUT`` keys; files are
written atomically, and a file whose stored key is not the model's is an error.

:class:`PooledFeatureTrainer` is :class:`~dynnet_d2.engine.trainer.DynnetTrainer` (optimizer,
schedule, hooks, checkpoints, ``--resume``, ``results.json``) with two changes: each iteration
draws ``SOLVER.IMS_PER_BATCH`` rows with Detectron2's ``TrainingSampler`` (seeded by ``SEED``)
and feeds ``{"features", "label"}`` inputs; evaluation feeds every test set's cached rows to the
dataset's evaluator. One process; the config must freeze the whole backbone and draw no
training augmentation (both checked before anything is computed).
"""
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import torch
from detectron2.data import DatasetCatalog
from detectron2.data.samplers import TrainingSampler
from detectron2.evaluation import inference_on_dataset
from detectron2.utils import comm
from torch import nn

from ..data.classification import build_classification_test_loader
from ..data.from_config import register_datasets_from_config
from ..modeling.dynamic import DynamicCompute
from ..utils.hashing import cache_root, flatten_config, hash_json, weights_hash
from ..utils.io import atomic_open
from .trainer import DynnetTrainer, register_trainer_chooser, report_results

logger = logging.getLogger(__name__)

# Bumped whenever what a cache file holds changes.
FORMAT_VERSION = 1


class FeatureCacheError(ValueError):
    """A config or model whose head cannot train from cached features, or a cache file that is
    not the model's (the message names the key or the file)."""


@dataclass
class FeatureSet:
    """The cached rows of one dataset: ``features`` ``(N, C)``, ``labels`` ``(N,)``,
    ``image_ids`` ``(N,)``, in the dataset's record order."""

    features: torch.Tensor
    labels: torch.Tensor
    image_ids: torch.Tensor

    def inputs(self, rows) -> List[dict]:
        """``ImageClassifier`` inputs ``{"features", "label", "image_id"}`` of ``rows``."""
        return [{"features": self.features[i], "label": int(self.labels[i]),
                 "image_id": int(self.image_ids[i])} for i in rows]


def check_config_cacheable(cfg) -> None:
    """Raise :class:`FeatureCacheError` unless ``cfg`` can train its head from cached features:
    an ``ImageClassifier`` without training augmentation, in one process."""
    if cfg.MODEL.META_ARCHITECTURE != "ImageClassifier":
        raise FeatureCacheError(f"MODEL.CLASSIFIER.CACHE_FEATURES is True but "
                                f"MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE!r}; "
                                f"cached pooled features serve ImageClassifier only")
    augmenting = {k: v for k, v in (("INPUT.CLASSIFICATION.SHIFT", cfg.INPUT.CLASSIFICATION.SHIFT),
                                    ("INPUT.RANDOM_FLIP", cfg.INPUT.RANDOM_FLIP))
                  if v not in (0, "none")}
    if augmenting:
        raise FeatureCacheError(f"MODEL.CLASSIFIER.CACHE_FEATURES caches each image once, "
                                f"unaugmented, but the config augments: {augmenting}; set "
                                f"INPUT.CLASSIFICATION.SHIFT 0 and INPUT.RANDOM_FLIP 'none'")
    if comm.get_world_size() > 1:
        raise FeatureCacheError("MODEL.CLASSIFIER.CACHE_FEATURES trains in one process; "
                                f"{comm.get_world_size()} were launched")


def check_backbone_frozen(model: nn.Module) -> None:
    """Raise :class:`FeatureCacheError` unless ``model``'s backbone is static and fixed: no
    parameter that trains, no BatchNorm that updates its statistics."""
    backbone = model.backbone
    if isinstance(backbone, DynamicCompute):
        raise FeatureCacheError("MODEL.CLASSIFIER.CACHE_FEATURES: the backbone executes part of "
                                "itself per input; its features cannot be cached")
    training = [n for n, p in backbone.named_parameters() if p.requires_grad]
    updating = [n for n, m in backbone.named_modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if training or updating:
        raise FeatureCacheError(
            f"MODEL.CLASSIFIER.CACHE_FEATURES needs a frozen backbone, but "
            f"{len(training)} of its parameters train (first: {training[:3]}) and {len(updating)} "
            f"BatchNorm layers update their statistics (first: {updating[:3]}); freeze every "
            f"stage (MODEL.BACKBONE.FREEZE True, or the backbone's FREEZE_AT and a frozen norm)")


def cache_key(cfg, model: nn.Module) -> str:
    """The folder name of ``model``'s caches: the format, the backbone's weights and what else
    changes a pooled feature (normalization, pooled output, input keys)."""
    config = {"in_feature": model.in_feature, "pixel_mean": model.pixel_mean.flatten().tolist(),
              "pixel_std": model.pixel_std.flatten().tolist(), **flatten_config(cfg.INPUT, "INPUT")}
    return f"v{FORMAT_VERSION}-{weights_hash(model, ('backbone',))}-{hash_json(config)}"


def cache_file(cfg, model: nn.Module, dataset_name: str) -> Path:
    """Where ``dataset_name``'s pooled features under ``model`` are stored."""
    records = hash_json(DatasetCatalog.get(dataset_name))
    return (cache_root(cfg.MODEL.CLASSIFIER.CACHE_DIR) / "classifier" / cache_key(cfg, model)
            / f"{dataset_name}-{records}.pt")


@torch.no_grad()
def _compute(cfg, model: nn.Module, dataset_name: str) -> FeatureSet:
    features, labels, image_ids = [], [], []
    was_training = model.training
    model.eval()
    try:
        for batch in build_classification_test_loader(cfg, dataset_name):
            features.append(model.pooled_features(model.preprocess(batch)).float().cpu())
            labels.extend(int(d["label"]) for d in batch)
            image_ids.extend(int(d["image_id"]) for d in batch)
    finally:
        model.train(was_training)
    return FeatureSet(torch.cat(features), torch.tensor(labels), torch.tensor(image_ids))


def pooled_features(cfg, model: nn.Module, dataset_name: str) -> FeatureSet:
    """The pooled features of every image of ``dataset_name`` under ``model``'s frozen
    backbone: read from the cache, else computed once and stored."""
    check_backbone_frozen(model)
    path = cache_file(cfg, model, dataset_name)
    key = path.parent.name
    if path.is_file():
        stored = torch.load(path, map_location="cpu")
        if stored.get("key") != key:
            raise FeatureCacheError(f"{path}: a feature cache of another backbone or input "
                                    f"config (key {stored.get('key')!r}, expected {key!r}); "
                                    f"delete it")
        return FeatureSet(stored["features"], stored["labels"], stored["image_ids"])
    start = time.perf_counter()
    computed = _compute(cfg, model, dataset_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        torch.save({"key": key, "features": computed.features, "labels": computed.labels,
                    "image_ids": computed.image_ids}, f)
    logger.info(f"Cached the pooled features of {dataset_name} "
                f"({tuple(computed.features.shape)}) in {time.perf_counter() - start:.1f} s: "
                f"{path}")
    return computed


class CachedFeatureBatches:
    """Endless training batches of cached rows (``SOLVER.IMS_PER_BATCH`` inputs each, drawn by
    ``TrainingSampler``'s shuffled epochs seeded by ``SEED``); the features are computed when the
    trainer binds its loaded model (:meth:`bind`), not at construction."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.features: Optional[FeatureSet] = None

    def bind(self, model: nn.Module) -> None:
        """Compute or read the training set's features under ``model``."""
        self.features = pooled_features(self.cfg, model, self.cfg.DATASETS.TRAIN[0])

    def __iter__(self) -> Iterator[List[dict]]:
        if self.features is None:
            raise RuntimeError("CachedFeatureBatches iterated before bind(model)")
        size = self.cfg.SOLVER.IMS_PER_BATCH
        seed = self.cfg.SEED if self.cfg.SEED >= 0 else None
        batch = []
        for row in TrainingSampler(len(self.features.labels), shuffle=True, seed=seed):
            batch.append(row)
            if len(batch) == size:
                yield self.features.inputs(batch)
                batch = []


class PooledFeatureTrainer(DynnetTrainer):
    """``DynnetTrainer`` training and evaluating the head from cached pooled features (module
    docstring)."""

    def __init__(self, cfg):
        check_config_cacheable(cfg)
        if len(cfg.DATASETS.TRAIN) != 1:
            raise FeatureCacheError(f"MODEL.CLASSIFIER.CACHE_FEATURES trains on one dataset; "
                                    f"DATASETS.TRAIN={list(cfg.DATASETS.TRAIN)}")
        super().__init__(cfg)

    @classmethod
    def build_model(cls, cfg):
        """``DynnetTrainer``'s model, its backbone checked (:func:`check_backbone_frozen`)."""
        model = super().build_model(cfg)
        check_backbone_frozen(model)
        return model

    @classmethod
    def build_train_loader(cls, cfg):
        return CachedFeatureBatches(cfg)

    def train(self):
        """Cache (or read) the training set's features under the loaded model, then train."""
        self._trainer.data_loader.bind(self.model)
        return super().train()

    @classmethod
    def test(cls, cfg, model, evaluators=None) -> OrderedDict:
        """Evaluate the head on every ``DATASETS.TEST`` from its cached features; writes
        ``results.json`` as :meth:`DynnetTrainer.test` does."""
        if evaluators is not None:
            raise ValueError("PooledFeatureTrainer.test builds each dataset's own evaluator")
        register_datasets_from_config(cfg)
        check_config_cacheable(cfg)
        results = OrderedDict()
        for name in cfg.DATASETS.TEST:
            rows = pooled_features(cfg, model, name)
            size = cfg.TEST.IMS_PER_BATCH
            batches = [rows.inputs(range(i, min(i + size, len(rows.labels))))
                       for i in range(0, len(rows.labels), size)]
            results[name] = inference_on_dataset(model, batches, cls.build_evaluator(cfg, name))
        if len(results) == 1:
            results = list(results.values())[0]
        report_results(cfg, model, results)
        return results


def choose_pooled_feature_trainer(cfg) -> Optional[type]:
    """:class:`PooledFeatureTrainer` when ``MODEL.CLASSIFIER.CACHE_FEATURES``, else None."""
    return PooledFeatureTrainer if cfg.MODEL.CLASSIFIER.CACHE_FEATURES else None


register_trainer_chooser(choose_pooled_feature_trainer)
