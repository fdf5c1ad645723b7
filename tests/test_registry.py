"""Every component dynnet_d2 registers builds from the smallest shipped config that uses it and
runs forward + backward on a tiny batch (timm's tests/test_models.py idea on Detectron2's
registries). A registration that no config under configs/ uses fails here."""
import gc
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from detectron2.modeling import (
    ANCHOR_GENERATOR_REGISTRY,
    BACKBONE_REGISTRY,
    META_ARCH_REGISTRY,
    PROPOSAL_GENERATOR_REGISTRY,
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_KEYPOINT_HEAD_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    RPN_HEAD_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    build_model,
)
from detectron2.utils.events import EventStorage
from fvcore.common.registry import Registry

import dynnet_d2  # noqa: F401  (registers every component)
from dynnet_d2.config import config_value, load_config
from dynnet_d2.engine import DynnetTrainer
from dynnet_d2.methods.fsrw import FSRW_REWEIGHTER_REGISTRY
from dynnet_d2.methods.idk import IDK_METHOD_REGISTRY
from dynnet_d2.modeling.classifier_heads import CLASSIFIER_HEAD_REGISTRY
from dynnet_d2.modeling.roi_heads import BOX_PREDICTOR_REGISTRY

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").rglob("*.yaml"))
# Registry name -> (config key naming the component,
#                   attribute path of the built module in the model).
REGISTRY_KEYS = {
    META_ARCH_REGISTRY._name: ("MODEL.META_ARCHITECTURE", ""),
    BACKBONE_REGISTRY._name: ("MODEL.BACKBONE.NAME", "backbone"),
    PROPOSAL_GENERATOR_REGISTRY._name: ("MODEL.PROPOSAL_GENERATOR.NAME", "proposal_generator"),
    RPN_HEAD_REGISTRY._name: ("MODEL.RPN.HEAD_NAME", "proposal_generator.rpn_head"),
    ANCHOR_GENERATOR_REGISTRY._name: ("MODEL.ANCHOR_GENERATOR.NAME",
                                      "proposal_generator.anchor_generator"),
    ROI_HEADS_REGISTRY._name: ("MODEL.ROI_HEADS.NAME", "roi_heads"),
    ROI_BOX_HEAD_REGISTRY._name: ("MODEL.ROI_BOX_HEAD.NAME", "roi_heads.box_head"),
    ROI_MASK_HEAD_REGISTRY._name: ("MODEL.ROI_MASK_HEAD.NAME", "roi_heads.mask_head"),
    ROI_KEYPOINT_HEAD_REGISTRY._name: ("MODEL.ROI_KEYPOINT_HEAD.NAME", "roi_heads.keypoint_head"),
    SEM_SEG_HEADS_REGISTRY._name: ("MODEL.SEM_SEG_HEAD.NAME", "sem_seg_head"),
    BOX_PREDICTOR_REGISTRY._name: ("MODEL.ROI_HEADS.OUTPUT_LAYER", "roi_heads.box_predictor"),
    CLASSIFIER_HEAD_REGISTRY._name: ("MODEL.CLASSIFIER.HEAD", "head"),
}
# Registries whose entries are not model components, each with its own registry-driven test.
TESTED_ELSEWHERE = {
    FSRW_REWEIGHTER_REGISTRY._name:
        "tests/methods/fsrw/test_fsrw.py::test_every_registered_reweighter_builds_runs_and_trains",
    IDK_METHOD_REGISTRY._name:
        "tests/methods/idk/test_idk.py::test_every_registered_method_fits_a_cascade",
}
TINY_BATCH = ["FEWSHOT.SHOT", 1, "SOLVER.IMS_PER_BATCH", 2, "DATALOADER.NUM_WORKERS", 0,
              "INPUT.MIN_SIZE_TRAIN", (96,), "INPUT.MAX_SIZE_TRAIN", 160, "INPUT.MIN_SIZE_TEST", 96,
              "INPUT.MAX_SIZE_TEST", 160, "DATASETS.CHECK_IMAGES", False]


def our_registrations():
    """(registry name, registered name) of every dynnet_d2 object in any fvcore Registry."""
    found = set()
    for registry in (o for o in gc.get_objects() if isinstance(o, Registry)):
        for name, obj in registry:
            if getattr(obj, "__module__", "").startswith("dynnet_d2"):
                found.add((registry._name, name))
    return sorted(found)


@lru_cache(maxsize=None)
def _parameter_count(path: Path) -> int:
    return sum(p.numel() for p in build_model(load_config(str(path), TINY_BATCH)).parameters())


def smallest_config_using(registry: str, name: str) -> Path:
    key = REGISTRY_KEYS[registry][0]
    users = [p for p in CONFIGS if config_value(load_config(str(p), TINY_BATCH), key) == name]
    assert users, f"no config under configs/ uses {registry} {name!r} ({key}); add one"
    return min(users, key=_parameter_count)


def _submodule(model, path: str):
    for part in filter(None, path.split(".")):
        model = getattr(model, part)
    return model


REGISTERED = [r for r in our_registrations() if r[0] not in TESTED_ELSEWHERE]


def test_every_registry_we_use_has_a_config_key():
    assert REGISTERED, "dynnet_d2 registers nothing?"
    unknown = {registry for registry, _ in our_registrations()} - set(REGISTRY_KEYS) - set(
        TESTED_ELSEWHERE)
    assert not unknown, f"add the config key of registries {unknown} to REGISTRY_KEYS"


@pytest.mark.parametrize("registry,name", REGISTERED, ids=lambda v: str(v))
def test_registered_component_trains_and_infers(registry, name):
    cfg = load_config(str(smallest_config_using(registry, name)), TINY_BATCH)
    torch.manual_seed(0)
    model = DynnetTrainer.build_model(cfg)
    batch = next(iter(DynnetTrainer.build_train_loader(cfg)))
    component = _submodule(model, REGISTRY_KEYS[registry][1])

    model.train()
    with EventStorage():  # training-mode heads log to Detectron2's event storage
        losses = model(batch)
    total = sum(losses.values())
    assert all(torch.isfinite(v) for v in losses.values()), losses
    total.backward()
    trainable = [p for p in component.parameters() if p.requires_grad]
    if trainable:
        grads = [p.grad for p in trainable if p.grad is not None]
        assert grads, f"{name}: no trainable parameter received a gradient"
        assert all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        outputs = model([{k: d[k] for k in ("image", "height", "width")} for d in batch])
    assert len(outputs) == len(batch)


def test_a_registration_no_config_uses_is_reported():
    with pytest.raises(AssertionError,
                       match="no config under configs/ uses .*'build_unused_backbone'"):
        smallest_config_using(BACKBONE_REGISTRY._name, "build_unused_backbone")
