"""Partial mask supervision (ShapeProp's data): which instances keep masks, by class and by a
seeded fraction of images; boxes always stay; bad subsets are named."""
import math

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import dynnet_d2  # noqa: F401  (registers the views)
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
