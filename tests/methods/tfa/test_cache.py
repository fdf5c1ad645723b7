"""Cached last-layer fine-tuning: the cached path gives the live model's losses, gradients and
detections; caches are reused, keyed and budgeted; the trainer runs, resumes and is selected
only when everything but the predictor is frozen; weights that leave the frozen parts unloaded
fail before anything is cached, and an evaluation without a defined metric fails."""
import copy
import json
import os

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.utils.events import EventStorage
from torch import nn

from dynnet_d2.config import load_config
from dynnet_d2.engine import (
    CheckpointMismatchError,
    DynnetCheckpointer,
    DynnetTrainer,
    build_trainer,
)
from dynnet_d2.methods.tfa.cache import (
    CacheBudgetError,
    CachedLastLayerTrainer,
    why_not_cacheable,
)
from dynnet_d2.methods.tfa.cache import features as cache_module
from dynnet_d2.methods.tfa.cache.features import (
    Augmentation,
    augmentation_mapper,
    estimate_mib,
    evaluation_cache,
    training_augmentations,
    training_cache,
)
from dynnet_d2.methods.tfa.cache.trainer import cached_batches, cached_inference, cached_losses

COS = "configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"
FULL = "configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_full_all_100itxK_shapes.yaml"


def _cfg(tmp_path, config=COS, *opts):
    return load_config(config, [
        "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "FEWSHOT.SHOT", 1,
        "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", 6, "SOLVER.STEPS", (4,),
        "SOLVER.CHECKPOINT_PERIOD", 3, "DATALOADER.NUM_WORKERS", 0,
        "INPUT.MIN_SIZE_TRAIN", (96, 112), "INPUT.MIN_SIZE_TEST", 96,
        "DATASETS.CHECK_IMAGES", False, "FEWSHOT.CACHE.DIR", str(tmp_path / "cache"),
        "OUTPUT_DIR", str(tmp_path / "run"), "SEED", 0, *opts])


@pytest.fixture(scope="module")
def model_and_cfg(tmp_path_factory):
    cfg = _cfg(tmp_path_factory.mktemp("last_layer"))
    torch.manual_seed(0)
    model = DynnetTrainer.build_model(cfg)
    with torch.no_grad():  # an RPN that proposes varied boxes, a predictor that detects some
        for p in model.roi_heads.box_predictor.parameters():
            p.normal_(0, 0.5)
    return model, cfg


@pytest.fixture(scope="module")
def weights(model_and_cfg, tmp_path_factory):
    """The (random) model of ``model_and_cfg`` as a checkpoint: every frozen part loads."""
    folder = tmp_path_factory.mktemp("weights")
    DynnetCheckpointer(model_and_cfg[0], str(folder)).save("random_model")
    return str(folder / "random_model.pth")


def _records(cfg, n):
    records = [r for r in DatasetCatalog.get(cfg.DATASETS.TRAIN[0]) if r["annotations"]]
    return records[:n]


def _seed_before(module, seed):
    def reseed(*_):
        torch.manual_seed(seed)

    return module.register_forward_pre_hook(reseed)


def _predictor_grads(model):
    return [p.grad.clone() for p in model.roi_heads.box_predictor.parameters()]


@pytest.mark.parametrize("flip", [False, True])
def test_cached_losses_and_gradients_equal_the_live_model(model_and_cfg, flip):
    model, cfg = model_and_cfg
    augmentation = Augmentation(112, flip)
    records = _records(cfg, 1)
    model.train()
    mapped = augmentation_mapper(cfg, augmentation)(dict(records[0]))
    hook = _seed_before(model.roi_heads, 7)
    model.zero_grad()
    with EventStorage():
        live = model([mapped])
    hook.remove()
    (live["loss_cls"] + live["loss_box_reg"]).backward()
    live_grads = _predictor_grads(model)

    cache = training_cache(cfg, model, records)
    entry = cache.entries[0][cache.augmentations.index(augmentation)]
    model.zero_grad()
    torch.manual_seed(7)
    with EventStorage():
        cached = cached_losses(model, [entry])
    (cached["loss_cls"] + cached["loss_box_reg"]).backward()
    for key in ("loss_cls", "loss_box_reg"):
        torch.testing.assert_close(cached[key], live[key], rtol=1e-5, atol=1e-6)
    assert live["loss_box_reg"] > 0  # foreground RoIs were sampled: the comparison covers both
    for cached_grad, live_grad in zip(_predictor_grads(model), live_grads):
        torch.testing.assert_close(cached_grad, live_grad, rtol=1e-4, atol=1e-6)


def test_cached_detections_equal_the_full_model(model_and_cfg):
    model, cfg = model_and_cfg
    name = cfg.DATASETS.TEST[0]
    model.eval()
    cache = evaluation_cache(cfg, model, name)
    mapper = augmentation_mapper(cfg, None)
    compared = 0
    for i in range(4):
        with torch.no_grad():
            live = model([mapper(dict(cache.records[i]))])[0]["instances"]
        cached = cached_inference(model, cache, [i])[0]["instances"]
        assert cached.image_size == live.image_size
        torch.testing.assert_close(cached.pred_boxes.tensor, live.pred_boxes.tensor,
                                   rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(cached.scores, live.scores, rtol=1e-4, atol=1e-5)
        assert torch.equal(cached.pred_classes, live.pred_classes)
        compared += len(live)
    assert compared > 0


def test_training_augmentations_enumerate_sizes_and_flips(tmp_path):
    cfg = _cfg(tmp_path)
    assert training_augmentations(cfg) == [Augmentation(96, False), Augmentation(96, True),
                                           Augmentation(112, False), Augmentation(112, True)]
    cfg.INPUT.RANDOM_FLIP = "none"
    assert training_augmentations(cfg) == [Augmentation(96, False), Augmentation(112, False)]


def test_caches_are_reused_and_keyed_by_frozen_weights(model_and_cfg, monkeypatch):
    model, cfg = model_and_cfg
    records = _records(cfg, 2)
    training_cache(cfg, model, records)
    calls = []
    compute = cache_module._features
    monkeypatch.setattr(cache_module, "_features",
                        lambda *a, **k: calls.append(1) or compute(*a, **k))
    fc = cfg.clone()
    fc.MODEL.ROI_HEADS.OUTPUT_LAYER = "FastRCNNOutputLayers"  # another predictor: same cache
    again = training_cache(fc, model, records)
    assert calls == [] and len(again.entries) == 2
    evaluation_cache(cfg, model, cfg.DATASETS.TEST[0])
    assert calls == []
    key = cache_module.cache_key(cfg, model)
    other_predictor = copy.deepcopy(model)
    with torch.no_grad():
        next(other_predictor.roi_heads.box_predictor.parameters()).add_(1.0)
    assert cache_module.cache_key(cfg, other_predictor) == key  # the predictor is not in the key
    other_backbone = copy.deepcopy(model)
    with torch.no_grad():
        next(other_backbone.backbone.parameters()).add_(1e-3)
    assert cache_module.cache_key(cfg, other_backbone) != key


def test_budget_is_checked_before_anything_is_computed(model_and_cfg, monkeypatch):
    model, cfg = model_and_cfg
    cfg = cfg.clone()
    cfg.FEWSHOT.CACHE.MAX_MEMORY_MB = 1
    cfg.FEWSHOT.CACHE.DIR = cfg.FEWSHOT.CACHE.DIR + "_budget"
    monkeypatch.setattr(cache_module, "_features", lambda *a, **k: pytest.fail("computed"))
    records = _records(cfg, 2)
    expected = estimate_mib(400 * 4, cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN
                            + max(len(r["annotations"]) for r in records), 256, "float32")
    with pytest.raises(CacheBudgetError, match=f"about {expected:.0f} MiB.*MAX_MEMORY_MB=1"):
        training_cache(cfg, model, records * 200)


def test_estimate_is_features_plus_boxes():
    # 10 images x 100 RoIs x (256 float16 values + 6 float32 values)
    assert estimate_mib(10, 100, 256, "float16") == 10 * 100 * (512 + 24) / 2 ** 20


def test_batches_draw_every_augmentation_and_record(model_and_cfg):
    model, cfg = model_and_cfg
    cache = training_cache(cfg, model, _records(cfg, 2))
    seen = set()
    batches = cached_batches(cache, 2, 0.5, seed=0)
    for _ in range(40):
        for item in next(batches):
            seen.add(id(item["entry"]))
    assert len(seen) == 2 * len(cache.augmentations)


def test_only_a_predictor_only_config_is_cacheable(tmp_path):
    assert why_not_cacheable(_cfg(tmp_path)) is None
    assert "MODEL.BACKBONE.FREEZE" in why_not_cacheable(_cfg(tmp_path, FULL))
    assert "ENABLED" in why_not_cacheable(_cfg(tmp_path, COS, "FEWSHOT.CACHE.ENABLED", False))
    assert "TEST.AUG.ENABLED" in why_not_cacheable(_cfg(tmp_path, COS, "TEST.AUG.ENABLED", True))
    crop = _cfg(tmp_path, COS, "INPUT.CROP.ENABLED", True)
    assert "cannot be enumerated" in why_not_cacheable(crop)
    with pytest.raises(ValueError, match="FEWSHOT.CACHE.DTYPE='bfloat8'"):
        why_not_cacheable(_cfg(tmp_path, COS, "FEWSHOT.CACHE.DTYPE", "bfloat8"))


def test_trainer_trains_evaluates_and_resumes(tmp_path, weights):
    cfg = _cfg(tmp_path, COS, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0, "MODEL.WEIGHTS", weights)
    trainer = build_trainer(cfg)
    assert isinstance(trainer, CachedLastLayerTrainer)
    trainer.resume_or_load(resume=False)
    before = [p.clone() for p in trainer.model.roi_heads.box_predictor.parameters()]
    frozen = [p.clone() for p in trainer.model.backbone.parameters()]
    results = trainer.train()
    assert "bAP" in results["bbox"] and "nAP50" in results["bbox"]
    saved = json.loads((tmp_path / "run" / "inference" / "results.json").read_text())
    assert saved["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"])
    after = list(trainer.model.roi_heads.box_predictor.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after))
    assert all(torch.equal(a, b) for a, b in zip(frozen, trainer.model.backbone.parameters()))
    assert os.path.isfile(tmp_path / "run" / "model_final.pth")
    metrics = [json.loads(line) for line in open(tmp_path / "run" / "metrics.json")]
    assert any("loss_cls" in m for m in metrics)

    resumed = build_trainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == cfg.SOLVER.MAX_ITER  # nothing left to train


@pytest.mark.parametrize("fits", ["nothing", "empty"])
def test_weights_that_leave_frozen_parts_unloaded_fail_before_any_caching(tmp_path, fits):
    """E.g. a classifier's checkpoint as MODEL.WEIGHTS: no backbone, RPN or box-head tensor
    loads, and the run used to train a predictor on random frozen features to all-NaN results."""
    path = ""
    if fits == "nothing":
        path = str(tmp_path / "classifier.pth")
        torch.save({"model": nn.Sequential(nn.Conv2d(1, 8, 3), nn.Linear(8, 10)).state_dict()},
                   path)
    trainer = build_trainer(_cfg(tmp_path, COS, "MODEL.WEIGHTS", path))
    with pytest.raises(CheckpointMismatchError) as e:
        trainer.resume_or_load(resume=False)
    for part in ("backbone (MODEL.BACKBONE.FREEZE)",
                 "proposal_generator (MODEL.PROPOSAL_GENERATOR.FREEZE)",
                 "roi_heads.box_head (MODEL.ROI_HEADS.FREEZE_FEAT)"):
        assert part in str(e.value)
    assert not (tmp_path / "cache").exists()  # nothing cached, nothing trained


def test_an_evaluation_without_one_defined_metric_is_an_error(tmp_path, weights):
    cfg = _cfg(tmp_path, COS, "MODEL.WEIGHTS", weights, "SOLVER.MAX_ITER", 1,
               "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 1.0)  # no detection passes
    trainer = build_trainer(cfg)
    trainer.resume_or_load(resume=False)
    with pytest.raises(ValueError, match=r"the evaluation on shapes_test_all1 after fine-tuning: "
                                         r"every metric is undefined"):
        trainer.train()


def test_full_fine_tuning_is_not_cached(tmp_path):
    assert not isinstance(build_trainer(_cfg(tmp_path, FULL)), CachedLastLayerTrainer)


def test_float16_storage_halves_the_features_and_stays_close(model_and_cfg, tmp_path):
    model, cfg = model_and_cfg
    half = cfg.clone()
    half.FEWSHOT.CACHE.DTYPE = "float16"
    half.FEWSHOT.CACHE.DIR = str(tmp_path / "fp16")
    records = _records(cfg, 1)
    full_entry = training_cache(cfg, model, records).entries[0][0]
    half_entry = training_cache(half, model, records).entries[0][0]
    assert half_entry["features"].dtype == torch.float16
    assert half_entry["features"].element_size() * 2 == full_entry["features"].element_size()
    assert cache_module.cache_key(half, model) != cache_module.cache_key(cfg, model)
    losses = []
    for entry in (full_entry, half_entry):
        torch.manual_seed(3)
        with EventStorage():
            losses.append(cached_losses(model, [entry]))
    for key in ("loss_cls", "loss_box_reg"):
        torch.testing.assert_close(losses[1][key], losses[0][key], rtol=1e-2, atol=1e-3)
