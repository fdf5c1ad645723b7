"""Feature caches for last-layer fine-tuning (TFA, thesis §7.2): what a frozen detector computes
before its box predictor, computed once and stored.

With the backbone, the RPN and the box head frozen (``MODEL.BACKBONE.FREEZE``,
``MODEL.PROPOSAL_GENERATOR.FREEZE``, ``MODEL.ROI_HEADS.FREEZE_FEAT``), the proposals of an image
under a given augmentation and the box-head features of every proposal never change during
fine-tuning. Two caches hold them:

* training (:func:`training_cache`): for every record of the fine-tuning set and every
  augmentation the training mapper can draw (each ``INPUT.MIN_SIZE_TRAIN`` choice, flipped and
  not), the training-mode RPN proposals with the ground-truth boxes appended (as
  ``label_and_sample_proposals`` appends them), their box-head features and the targets. One
  file per record (all its augmentations), so records shared by several K-shot sets (nested
  shots, repeated images across seeds) and both predictors (cos, fc) are computed once.
* evaluation (:func:`evaluation_cache`): the test-mode proposals and their box-head features of
  every image of a test set, one file per test set.

Shapes, per augmentation of a record: ``boxes`` (R, 4) XYXY in the augmented image,
``logits`` (R,) RPN objectness, ``features`` (R, D) box-head outputs (D =
``box_head.output_shape`` flattened), ``gt_boxes`` (G, 4), ``gt_classes`` (G,), ``image_size``
(2,) = (height, width) of the augmented image. R = proposals + G when the ground truth is
appended.

Files live under ``FEWSHOT.CACHE.DIR/<key>/``, where the key hashes the frozen weights (not the
checkpoint file: every surgery of one base model shares it), the config keys that change what
is computed, and a format version; a record's file name hashes its image and annotations. Every
file is written atomically, so concurrent processes computing the same record are harmless.

Exactness: an image is run alone (padded to ``SIZE_DIVISIBILITY``), as Detectron2's test loader
runs it. Live training pads the images of a batch to a common size, which changes backbone
features near the border of the smaller images when sizes differ; everything after the
features (proposals, matching, sampling, predictor) is Detectron2's own code.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.data import transforms as T
from detectron2.modeling.proposal_generator.proposal_utils import add_ground_truth_to_proposals
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils.events import EventStorage
from tqdm import tqdm

from ....config import config_value
from ....data.mappers import CheckedDatasetMapper
from ....utils.hashing import cache_root, flatten_config, hash_json, weights_hash
from ....utils.io import atomic_open

logger = logging.getLogger(__name__)

# Bumped whenever what a cache file holds changes.
FORMAT_VERSION = 1
# The modules whose weights the cached tensors depend on.
FROZEN_PARTS = ("backbone", "proposal_generator", "roi_heads.box_head")
# Config keys that only change the predictor or the run, never the cached tensors.
KEYS_NOT_IN_CACHE_KEY = (
    "MODEL.WEIGHTS",
    "MODEL.ROI_HEADS.OUTPUT_LAYER",
    "MODEL.ROI_HEADS.COSINE_SCALE",
    "MODEL.ROI_HEADS.NUM_CLASSES",
)
DTYPES = {"float32": torch.float32, "float16": torch.float16}


class CacheNotApplicableError(ValueError):
    """The config's fine-tuning cannot be served from a feature cache (says why)."""


class CacheBudgetError(MemoryError):
    """A cache's estimated size exceeds ``FEWSHOT.CACHE.MAX_MEMORY_MB``."""


def cache_dir(cfg) -> Path:
    """``last_layer`` in ``FEWSHOT.CACHE.DIR``, else ``$DYNNET_CACHE``, else
    ``~/.cache/dynnet_d2``."""
    return cache_root(cfg.FEWSHOT.CACHE.DIR) / "last_layer"


def why_not_cacheable(cfg) -> Optional[str]:
    """``None`` when the config's fine-tuning can use the cache, else the reason it cannot."""
    if not cfg.FEWSHOT.CACHE.ENABLED:
        return "FEWSHOT.CACHE.ENABLED is False"
    if cfg.FEWSHOT.CACHE.DTYPE not in DTYPES:
        raise ValueError(f"FEWSHOT.CACHE.DTYPE={cfg.FEWSHOT.CACHE.DTYPE!r}: expected one of "
                         f"{sorted(DTYPES)}")
    frozen = ("MODEL.BACKBONE.FREEZE", "MODEL.PROPOSAL_GENERATOR.FREEZE",
              "MODEL.ROI_HEADS.FREEZE_FEAT")
    unfrozen = [k for k in frozen if not config_value(cfg, k)]
    if unfrozen:
        return f"not only the box predictor trains ({', '.join(unfrozen)} False)"
    if cfg.MODEL.META_ARCHITECTURE != "GeneralizedRCNN":
        return f"MODEL.META_ARCHITECTURE={cfg.MODEL.META_ARCHITECTURE} (GeneralizedRCNN only)"
    for key in ("MODEL.MASK_ON", "MODEL.KEYPOINT_ON", "MODEL.LOAD_PROPOSALS", "TEST.AUG.ENABLED"):
        if config_value(cfg, key):
            return f"{key} is True"
    if cfg.MODEL.ROI_HEADS.NAME not in ("StandardROIHeads", "TFAROIHeads"):
        return f"MODEL.ROI_HEADS.NAME={cfg.MODEL.ROI_HEADS.NAME} (box-only ROI heads only)"
    if cfg.SOLVER.AMP.ENABLED:
        return "SOLVER.AMP.ENABLED is True"
    try:
        training_augmentations(cfg)
    except CacheNotApplicableError as e:
        return str(e)
    return None


@dataclass(frozen=True)
class Augmentation:
    """One deterministic augmentation the training mapper can draw."""

    short_edge: int
    flip: bool


def training_augmentations(cfg) -> List[Augmentation]:
    """Every augmentation of the training mapper, enumerated: ``ResizeShortestEdge`` with
    ``choice`` sampling times ``RandomFlip`` (flipped and not). Anything else (crops, ranges of
    sizes, other augmentations) raises :class:`CacheNotApplicableError`."""
    sizes, flips = None, [False]
    for aug in DatasetMapper.from_config(cfg, is_train=True)["augmentations"]:
        if isinstance(aug, T.ResizeShortestEdge) and not aug.is_range:
            sizes = [int(s) for s in aug.short_edge_length]
        elif isinstance(aug, T.RandomFlip):
            flips = [False, True]
        else:
            raise CacheNotApplicableError(
                f"the training augmentation {aug} cannot be enumerated (only ResizeShortestEdge "
                f"with INPUT.MIN_SIZE_TRAIN_SAMPLING 'choice' and RandomFlip can)")
    if sizes is None:
        raise CacheNotApplicableError("no ResizeShortestEdge among the training augmentations")
    return [Augmentation(size, flip) for size in sizes for flip in flips]


def flip_probability(cfg) -> float:
    """The training mapper's ``RandomFlip`` probability (0 without one)."""
    flips = [a for a in DatasetMapper.from_config(cfg, is_train=True)["augmentations"]
             if isinstance(a, T.RandomFlip)]
    return float(flips[0].prob) if flips else 0.0


def augmentation_mapper(cfg, augmentation: Optional[Augmentation]) -> CheckedDatasetMapper:
    """The training mapper with ``augmentation`` as its only, fixed augmentation; ``None``: the
    test mapper."""
    if augmentation is None:
        return CheckedDatasetMapper(cfg, is_train=False)
    kwargs = DatasetMapper.from_config(cfg, is_train=True)
    flip = [a for a in kwargs["augmentations"] if isinstance(a, T.RandomFlip)]
    augs = [T.ResizeShortestEdge((augmentation.short_edge,), cfg.INPUT.MAX_SIZE_TRAIN, "choice")]
    if augmentation.flip:
        augs.append(T.RandomFlip(prob=1.0, horizontal=flip[0].horizontal,
                                 vertical=flip[0].vertical))
    return CheckedDatasetMapper(**{**kwargs, "augmentations": augs})


def frozen_weights_hash(model: torch.nn.Module) -> str:
    """Hash of the parameters and buffers of :data:`FROZEN_PARTS`, names and bytes."""
    return weights_hash(model, FROZEN_PARTS)


def cache_key(cfg, model: torch.nn.Module) -> str:
    """Folder name under :func:`cache_dir` for ``model`` under ``cfg``."""
    config = {k: v for k, v in flatten_config(cfg.MODEL, "MODEL").items()
              if k not in KEYS_NOT_IN_CACHE_KEY and not k.endswith(".FREEZE")}
    config.update(flatten_config(cfg.INPUT, "INPUT"))
    config["DATALOADER.FILTER_EMPTY_ANNOTATIONS"] = cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
    config["FEWSHOT.CACHE.DTYPE"] = cfg.FEWSHOT.CACHE.DTYPE
    return f"v{FORMAT_VERSION}-{frozen_weights_hash(model)}-{hash_json(config)}"


def record_key(record: dict) -> str:
    """Hash of what a training record contributes: its image and its box annotations."""
    annotations = [
        [list(map(float, a["bbox"])), int(a.get("bbox_mode", BoxMode.XYXY_ABS)),
         int(a["category_id"]), int(a.get("iscrowd", 0))]
        for a in record.get("annotations", [])
    ]
    return hash_json([record["file_name"], record.get("height"), record.get("width"),
                      annotations])


def feature_dim(model) -> int:
    shape = model.roi_heads.box_head.output_shape
    return int(shape.channels * (shape.height or 1) * (shape.width or 1))


def estimate_mib(num_entries: int, rois_per_entry: int, dim: int, dtype: str) -> float:
    """Memory of ``num_entries`` cached images of ``rois_per_entry`` RoIs each: features of
    ``dim`` values in ``dtype`` plus box (4), logit and bookkeeping values in float32."""
    per_roi = dim * DTYPES[dtype].itemsize + 6 * 4
    return num_entries * rois_per_entry * per_roi / 2 ** 20


def check_budget(cfg, what: str, num_entries: int, rois_per_entry: int, dim: int) -> float:
    """The estimate of :func:`estimate_mib`, logged; :class:`CacheBudgetError` above the
    budget."""
    dtype = cfg.FEWSHOT.CACHE.DTYPE
    mib = estimate_mib(num_entries, rois_per_entry, dim, dtype)
    budget = cfg.FEWSHOT.CACHE.MAX_MEMORY_MB
    detail = (f"{num_entries} images x {rois_per_entry} RoIs x {dim} {dtype} features = "
              f"about {mib:.0f} MiB")
    if mib > budget:
        raise CacheBudgetError(
            f"the feature cache of {what} needs {detail}, above FEWSHOT.CACHE.MAX_MEMORY_MB="
            f"{budget}. Raise the budget, set FEWSHOT.CACHE.DTYPE float16 (half the memory), or "
            f"FEWSHOT.CACHE.ENABLED False to fine-tune the full model")
    logger.info(f"Feature cache of {what}: {detail}")
    return mib


def _save(path: Path, obj) -> None:
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def _load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a file cut short by a crash before atomic writes, or foreign
        logger.warning(f"Ignoring unreadable cache file {path}: {type(e).__name__}: {e}")
        return None


@torch.no_grad()
def _features(model, mapped: Sequence[dict], training: bool) -> List[Dict[str, torch.Tensor]]:
    """Proposals and box-head features of mapped inputs of one image size."""
    images = model.preprocess_image(mapped)
    features = model.backbone(images.tensor)
    targets = ([m["instances"].to(model.device) for m in mapped] if training else None)
    generator = model.proposal_generator
    was_training = generator.training
    generator.train(training)
    try:
        with EventStorage():  # the training-mode RPN logs its (unused) losses' statistics
            proposals, _ = generator(images, features, targets)
    finally:
        generator.train(was_training)
    heads = model.roi_heads
    if training and heads.proposal_append_gt:
        proposals = add_ground_truth_to_proposals(targets, proposals)
    pooled = heads.box_pooler([features[f] for f in heads.box_in_features],
                              [p.proposal_boxes for p in proposals])
    box_features = torch.flatten(heads.box_head(pooled), 1).split([len(p) for p in proposals])
    out = []
    for i, p in enumerate(proposals):
        entry = {"boxes": p.proposal_boxes.tensor.cpu(), "logits": p.objectness_logits.cpu(),
                 "features": box_features[i].cpu(),
                 "image_size": torch.tensor(p.image_size)}
        if training:
            entry["gt_boxes"] = targets[i].gt_boxes.tensor.cpu()
            entry["gt_classes"] = targets[i].gt_classes.cpu()
        out.append(entry)
    return out


def _by_size(mapped: List[dict], batch_size: int):
    """Indices of ``mapped`` grouped by image size, in batches (no padding between images)."""
    groups: Dict[tuple, List[int]] = {}
    for i, m in enumerate(mapped):
        groups.setdefault(tuple(m["image"].shape[-2:]), []).append(i)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start:start + batch_size]


def _compute(model, mapped: List[dict], training: bool, dtype, batch_size: int) -> List[dict]:
    out: List[Optional[dict]] = [None] * len(mapped)
    for batch in _by_size(mapped, batch_size):
        for i, entry in zip(batch, _features(model, [mapped[i] for i in batch], training)):
            entry["features"] = entry["features"].to(dtype)
            out[i] = entry
    return out


@dataclass
class TrainingCache:
    """The cached training set: ``entries[r][a]`` is record ``r`` under ``augmentations[a]``."""

    records: List[dict]
    augmentations: List[Augmentation]
    entries: List[List[Dict[str, torch.Tensor]]]


def training_cache(cfg, model, dataset_dicts: List[dict], batch_size: int = 4) -> TrainingCache:
    """Load, or compute and store, the training cache of ``dataset_dicts`` (the fine-tuning
    set's records) for ``model`` under ``cfg``. ``model`` has its weights loaded."""
    augmentations = training_augmentations(cfg)
    max_gt = max((len(r.get("annotations", [])) for r in dataset_dicts), default=0)
    rois = cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN + max_gt
    check_budget(cfg, f"{len(dataset_dicts)} training records x {len(augmentations)} "
                 f"augmentations", len(dataset_dicts) * len(augmentations), rois,
                 feature_dim(model))
    folder = cache_dir(cfg) / cache_key(cfg, model) / "train"
    dtype = DTYPES[cfg.FEWSHOT.CACHE.DTYPE]
    mappers = [augmentation_mapper(cfg, a) for a in augmentations]
    entries, missing = [], []
    for i, record in enumerate(dataset_dicts):
        path = folder / f"{record_key(record)}.pt"
        cached = _load(path) if path.is_file() else None
        if cached is not None and len(cached) != len(augmentations):
            cached = None
        entries.append(cached)
        if cached is None:
            missing.append(i)
    if missing:
        logger.info(f"Computing the training feature cache of {len(missing)} of "
                    f"{len(dataset_dicts)} records in {folder}")
        was_training = model.training
        model.eval()
        try:
            for i in tqdm(missing, desc="feature cache (train)", mininterval=10,
                          disable=len(missing) < 20):
                mapped = [mapper(dict(dataset_dicts[i])) for mapper in mappers]
                entries[i] = _compute(model, mapped, True, dtype, batch_size)
                _save(folder / f"{record_key(dataset_dicts[i])}.pt", entries[i])
        finally:
            model.train(was_training)
    return TrainingCache(list(dataset_dicts), augmentations, entries)


@dataclass
class EvaluationCache:
    """The cached test set: ``entries[i]`` holds the proposals and features of ``records[i]``."""

    dataset: str
    records: List[dict]
    entries: List[Dict[str, torch.Tensor]]


def evaluation_cache(cfg, model, dataset_name: str, batch_size: int = 8) -> EvaluationCache:
    """Load, or compute and store, the test cache of ``dataset_name`` for ``model``."""
    records = DatasetCatalog.get(dataset_name)
    check_budget(cfg, f"test set {dataset_name}", len(records),
                 cfg.MODEL.RPN.POST_NMS_TOPK_TEST, feature_dim(model))
    content = hash_json([[r["file_name"], r.get("image_id"), r.get("height"), r.get("width")]
                         for r in records])
    path = cache_dir(cfg) / cache_key(cfg, model) / "test" / f"{dataset_name}-{content}.pt"
    entries = _load(path) if path.is_file() else None
    if entries is None or len(entries) != len(records):
        logger.info(f"Computing the test feature cache of {dataset_name} in {path}")
        mapper = augmentation_mapper(cfg, None)
        dtype = DTYPES[cfg.FEWSHOT.CACHE.DTYPE]
        was_training = model.training
        model.eval()
        entries = []
        try:
            for start in tqdm(range(0, len(records), batch_size), desc="feature cache (test)",
                              mininterval=10):
                mapped = [mapper(dict(r)) for r in records[start:start + batch_size]]
                entries += _compute(model, mapped, False, dtype, batch_size)
        finally:
            model.train(was_training)
        _save(path, entries)
    return EvaluationCache(dataset_name, records, entries)


def proposals_of(entry: Dict[str, torch.Tensor], device, first_row: int = 0) -> Instances:
    """The cached proposals of one entry as Detectron2 ``Instances``; ``cache_row`` numbers the
    rows of its features from ``first_row``."""
    proposals = Instances(tuple(int(s) for s in entry["image_size"]))
    proposals.proposal_boxes = Boxes(entry["boxes"].to(device))
    proposals.objectness_logits = entry["logits"].to(device)
    proposals.cache_row = torch.arange(first_row, first_row + len(entry["boxes"]), device=device)
    return proposals


def targets_of(entry: Dict[str, torch.Tensor], device) -> Instances:
    targets = Instances(tuple(int(s) for s in entry["image_size"]))
    targets.gt_boxes = Boxes(entry["gt_boxes"].to(device))
    targets.gt_classes = entry["gt_classes"].to(device)
    return targets
