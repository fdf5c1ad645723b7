"""Pooled-feature caches (dynnet_d2/engine/pooled_features.py): the head of an ImageClassifier on
a frozen backbone gives the same logits from cached features as end to end; the cache is read
back, keyed by the backbone, refuses a file of another backbone and configs it cannot serve;
the cached trainer writes the classification results and is deterministic."""
import json
from pathlib import Path

import pytest
import torch
from detectron2.data import DatasetCatalog

import dynnet_d2  # noqa: F401  (registers every component)
from dynnet_d2.config import load_config
from dynnet_d2.data.classification import ClassificationMapper
from dynnet_d2.engine import (
    DynnetTrainer,
    FeatureCacheError,
    PooledFeatureTrainer,
    build_trainer,
    feature_cache,
    pooled_features,
)
from dynnet_d2.engine.trainer import trainer_class

DIGITS = str(Path(__file__).resolve().parents[2] / "configs/Classification/"
             "classifier_R8cifar_200it_digits.yaml")


def cached_cfg(tmp_path, *opts):
    return load_config(DIGITS, ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.FREEZE", True,
                                "MODEL.CLASSIFIER.CACHE_FEATURES", True,
                                "MODEL.CLASSIFIER.CACHE_DIR", str(tmp_path / "cache"),
                                "INPUT.CLASSIFICATION.SHIFT", 0, "OUTPUT_DIR",
                                str(tmp_path / "run"), "SEED", 0, *opts])


def test_cached_features_give_the_end_to_end_logits_and_are_read_back(tmp_path, monkeypatch):
    cfg = cached_cfg(tmp_path)
    torch.manual_seed(0)
    model = PooledFeatureTrainer.build_model(cfg).eval()
    rows = pooled_features(cfg, model, "digits_test")
    records = DatasetCatalog.get("digits_test")
    assert rows.features.shape == (300, model.head.in_features)
    assert rows.image_ids.tolist() == [r["image_id"] for r in records]
    assert rows.labels.tolist() == [r["label"] for r in records]
    mapper = ClassificationMapper(cfg, is_train=False)
    images = [mapper(r) for r in records[:5]]
    with torch.no_grad():
        end_to_end = model(images)
        cached = model(rows.inputs(range(5)))
    torch.testing.assert_close(torch.stack([o["scores"] for o in cached]),
                               torch.stack([o["scores"] for o in end_to_end]))
    assert "gflops" in end_to_end[0] and "gflops" not in cached[0]

    def must_not_compute(*args):
        raise AssertionError("computed again")

    monkeypatch.setattr(feature_cache, "_compute", must_not_compute)
    torch.testing.assert_close(pooled_features(cfg, model, "digits_test").features, rows.features)
    # another backbone has another key: its own file, never this one
    with torch.no_grad():
        model.backbone.stem.weight.mul_(2)
    with pytest.raises(AssertionError, match="computed again"):
        pooled_features(cfg, model, "digits_test")


def test_a_cache_file_of_another_backbone_is_refused(tmp_path):
    cfg = cached_cfg(tmp_path)
    model = PooledFeatureTrainer.build_model(cfg).eval()
    path = feature_cache.cache_file(cfg, model, "digits_test")
    path.parent.mkdir(parents=True)
    torch.save({"key": "v1-other", "features": torch.zeros(300, 4), "labels": torch.zeros(300),
                "image_ids": torch.zeros(300)}, path)
    with pytest.raises(FeatureCacheError, match="another backbone.*'v1-other'"):
        pooled_features(cfg, model, "digits_test")


def test_configs_the_cache_cannot_serve_are_refused_before_work(tmp_path):
    with pytest.raises(FeatureCacheError, match="needs a frozen backbone.*train"):
        PooledFeatureTrainer(cached_cfg(tmp_path, "MODEL.BACKBONE.FREEZE", False))
    with pytest.raises(FeatureCacheError, match="augments.*INPUT.CLASSIFICATION.SHIFT"):
        PooledFeatureTrainer(cached_cfg(tmp_path, "INPUT.CLASSIFICATION.SHIFT", 2))
    assert not (tmp_path / "cache").exists()


def test_the_cached_trainer_is_chosen_writes_results_and_is_deterministic(tmp_path):
    torch.manual_seed(0)
    base = DynnetTrainer.build_model(load_config(DIGITS, ["MODEL.DEVICE", "cpu"]))
    torch.save({"model": base.state_dict()}, tmp_path / "base.pth")  # the frozen backbone
    heads = []
    for run in ("a", "b"):
        cfg = cached_cfg(tmp_path, "OUTPUT_DIR", str(tmp_path / run), "SOLVER.MAX_ITER", 60,
                         "SOLVER.BASE_LR", 0.05, "MODEL.WEIGHTS", str(tmp_path / "base.pth"))
        assert trainer_class(cfg) is PooledFeatureTrainer
        torch.manual_seed(run == "b")  # the head starts elsewhere: the weights overwrite it
        trainer = build_trainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
        metrics = json.loads((tmp_path / run / "inference/results.json").read_text())
        assert metrics["classification"]["num_images"] == 300
        assert "mean_gflops_executed" not in metrics["classification"]
        heads.append(trainer.model.head.weight.detach().clone())
    torch.testing.assert_close(heads[0], heads[1], rtol=0, atol=0)
    # --eval-only of the trained run through the cached path gives the same results
    cfg = cached_cfg(tmp_path, "OUTPUT_DIR", str(tmp_path / "b"))
    results = trainer_class(cfg).evaluate_checkpoint(cfg, resume=True)
    assert results["classification"]["top1"] == metrics["classification"]["top1"]
    assert trainer_class(load_config(DIGITS)) is DynnetTrainer
