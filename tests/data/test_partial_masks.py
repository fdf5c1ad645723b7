"""Partial mask supervision (ShapeProp's data): which instances keep masks, by class and by a
seeded fraction of images; boxes always stay; bad subsets are named; the mapper flags instances
without a mask (``gt_mask_valid``) in line with the instances Detectron2 keeps."""
import math
from pathlib import Path

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

import dynnet_d2  # noqa: F401  (registers the views)
from dynnet_d2.config import get_dynnet_cfg, load_config
from dynnet_d2.data import DatasetFormatError
from dynnet_d2.data.build import training_dataset_dicts
from dynnet_d2.data.mappers import CheckedDatasetMapper
from dynnet_d2.data.partial_masks import (
    images_keeping_masks,
    register_partial_masks,
    without_masks_outside_classes,
    without_masks_outside_images,
)
from dynnet_d2.data.synthetic import base_classes, novel_classes


def ann(category_id, box, mask):
    return {"category_id": category_id, "bbox": box, "segmentation": [[mask]]}


RECORDS = [
    {"image_id": 7, "annotations": [ann(0, [0, 0, 1, 1], 1), ann(2, [0, 0, 2, 2], 2)]},
    {"image_id": 3, "annotations": [ann(1, [1, 1, 1, 1], 3)]},
]


def has_mask(record):
    return ["segmentation" in a for a in record["annotations"]]


def test_category_wise_keeps_masks_of_the_named_classes_only():
    kept = without_masks_outside_classes(RECORDS, [0, 1])
    assert [has_mask(r) for r in kept] == [[True, False], [True]]
    assert [a["bbox"] for r in kept for a in r["annotations"]] == [[0, 0, 1, 1], [0, 0, 2, 2],
                                                                   [1, 1, 1, 1]]
    assert has_mask(RECORDS[0]) == [True, True]  # the source records are not modified


def test_image_wise_fraction_is_seeded_and_independent_of_record_order():
    ids = list(range(20))
    chosen = images_keeping_masks(ids, 0.25, seed=4)
    assert len(chosen) == 5
    assert chosen == images_keeping_masks(list(reversed(ids)), 0.25, seed=4)
    assert chosen != images_keeping_masks(ids, 0.25, seed=5)
    assert images_keeping_masks(ids, 1.0, seed=0) == set(ids)
    kept = without_masks_outside_images(RECORDS, 0.5, seed=0)  # one of the two images
    assert sorted(any(has_mask(r)) for r in kept) == [False, True]


@pytest.mark.parametrize("split", [1, 2])
def test_registered_shapes_views_both_directions(split):
    source = DatasetCatalog.get("shapes_train")
    classes = list(MetadataCatalog.get("shapes_train").thing_classes)
    for part, names in (("base", base_classes(split)), ("novel", novel_classes(split))):
        view = DatasetCatalog.get(f"shapes_train_masks_{part}{split}")
        assert len(view) == len(source)
        for record in view:
            for ann in record["annotations"]:
                assert ("segmentation" in ann) == (classes[ann["category_id"]] in names)
        meta = MetadataCatalog.get(f"shapes_train_masks_{part}{split}")
        assert meta.mask_classes == list(names) and meta.thing_classes == classes


def test_registered_shapes_fraction_view():
    view = DatasetCatalog.get("shapes_train_masks_10pct_seed1")
    with_masks = [r for r in view if any(has_mask(r))]
    assert len(with_masks) == math.ceil(0.1 * len(view))
    source_ids = [r["image_id"] for r in DatasetCatalog.get("shapes_train")]
    assert {r["image_id"] for r in with_masks} == images_keeping_masks(source_ids, 0.1, seed=1)
    assert all(all(has_mask(r)) for r in with_masks)  # a chosen image keeps every mask
    assert MetadataCatalog.get("shapes_train_masks_10pct_seed1").mask_fraction == 0.1


@pytest.mark.parametrize("kwargs,match", [
    ({"mask_classes": ["circle", "dodecahedron"]}, r"\['dodecahedron'\] are not classes"),
    ({"fraction": 0.0}, r"fraction 0.0 is outside \(0, 1\]"),
    ({"fraction": 1.5}, r"fraction 1.5 is outside \(0, 1\]"),
])
def test_bad_subsets_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        register_partial_masks("shapes_train_masks_bad", "shapes_train", **kwargs)


SHAPEPROP_CONFIG = (Path(__file__).resolve().parents[2] / "configs/ShapeProp/"
                    "mask_rcnn_agnostic_MobileNetV2_FPN_2800it_shapesmasksbase1.yaml")


def mapper_for_training():
    cfg = load_config(str(SHAPEPROP_CONFIG))
    cfg.INPUT.RANDOM_FLIP = "none"
    return CheckedDatasetMapper(cfg, is_train=True)


def test_mapper_flags_instances_without_masks_through_detectron2s_filtering():
    record = dict(DatasetCatalog.get("shapes_train")[0])
    polygon = [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]
    xywh = BoxMode.XYWH_ABS
    record["annotations"] = [
        {"category_id": 3, "bbox": [40, 40, 0, 10], "bbox_mode": xywh,  # empty box: dropped
         "segmentation": polygon},
        {"category_id": 5, "bbox": [50, 20, 20, 10], "bbox_mode": xywh},  # no mask
        {"category_id": 1, "bbox": [0, 0, 5, 5], "bbox_mode": xywh, "iscrowd": 1,
         "segmentation": polygon},  # crowd: dropped
        {"category_id": 2, "bbox": [10, 10, 20, 20], "bbox_mode": xywh,
         "segmentation": polygon},
    ]
    instances = mapper_for_training()(record)["instances"]
    assert instances.gt_classes.tolist() == [5, 2]
    assert instances.gt_mask_valid.tolist() == [False, True]
    placeholder = instances.gt_masks.get_bounding_boxes().tensor[0]
    assert torch.allclose(placeholder, instances.gt_boxes.tensor[0])  # the box itself


def test_mapped_partial_view_keeps_masks_of_base_classes_only():
    base = {MetadataCatalog.get("shapes_train").thing_classes.index(c)
            for c in base_classes(1)}
    mapper = mapper_for_training()
    seen = set()
    for record in DatasetCatalog.get("shapes_train_masks_base1")[:20]:
        instances = mapper(record)["instances"]
        for cls, valid in zip(instances.gt_classes.tolist(), instances.gt_mask_valid.tolist()):
            assert valid == (cls in base)
            seen.add(valid)
    assert seen == {True, False}


def test_coco_voc_and_nonvoc_views_partition_the_80_classes():
    classes = MetadataCatalog.get("coco_2017_train").thing_classes
    voc = MetadataCatalog.get("coco_2017_train_masks_voc").mask_classes
    nonvoc = MetadataCatalog.get("coco_2017_train_masks_nonvoc").mask_classes
    assert len(voc) == 20 and len(nonvoc) == 60
    assert sorted(voc + nonvoc) == sorted(classes)
    assert {"person", "dining table", "tv", "couch"} <= set(voc)


def test_config_keys_keep_masks_of_named_classes_or_images():
    cfg = get_dynnet_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 20
    cfg.DATASETS.CHECK_IMAGES = False
    cfg.DATASETS.TRAIN = ("shapes_train",)
    classes = list(MetadataCatalog.get("shapes_train").thing_classes)
    full = training_dataset_dicts(cfg)
    cfg.DATASETS.TRAIN_MASK_CLASSES = classes[:3]
    by_class = training_dataset_dicts(cfg)
    for record in by_class:
        for a in record["annotations"]:
            assert ("segmentation" in a) == (a["category_id"] < 3)
    assert [len(r["annotations"]) for r in by_class] == [len(r["annotations"]) for r in full]
    cfg.DATASETS.TRAIN_MASK_CLASSES = []
    cfg.DATASETS.TRAIN_MASK_FRACTION, cfg.DATASETS.TRAIN_MASK_SEED = 0.5, 1
    by_image = training_dataset_dicts(cfg)
    keep = images_keeping_masks([r["image_id"] for r in full], 0.5, 1)
    for record in by_image:
        assert all(("segmentation" in a) == (record["image_id"] in keep)
                   for a in record["annotations"])
    cfg.DATASETS.TRAIN_MASK_FRACTION = 0.0
    with pytest.raises(ValueError, match=r"TRAIN_MASK_FRACTION: mask fraction 0.0 is outside"):
        training_dataset_dicts(cfg)
    cfg.DATASETS.TRAIN_MASK_FRACTION = 1.0
    cfg.DATASETS.TRAIN_MASK_CLASSES = ["circle", "dodecahedron"]
    with pytest.raises(ValueError, match=r"TRAIN_MASK_CLASSES.*\['dodecahedron'\]"):
        training_dataset_dicts(cfg)


def test_mask_training_without_any_mask_is_an_error():
    name = "shapes_train_boxes_only_test"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [
            {**r, "annotations": [{k: v for k, v in a.items() if k != "segmentation"}
                                  for a in r["annotations"]]}
            for r in DatasetCatalog.get("shapes_train")[:4]])
        MetadataCatalog.get(name).thing_classes = MetadataCatalog.get("shapes_train").thing_classes
    cfg = get_dynnet_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 20
    cfg.DATASETS.CHECK_IMAGES = False
    cfg.DATASETS.TRAIN = (name,)
    assert len(training_dataset_dicts(cfg)) == 4  # boxes alone are fine without masks
    cfg.MODEL.MASK_ON = True
    with pytest.raises(DatasetFormatError,
                       match=r"'shapes_train_boxes_only_test' has no segmentation.*MASK_ON False"):
        training_dataset_dicts(cfg)
