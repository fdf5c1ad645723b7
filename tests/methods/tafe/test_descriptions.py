"""Attribute-structured pair descriptions (dynnet_d2/methods/tafe/descriptions.py, the Table 5.5
task-encoding ablation): the shipped JSON files are the generator's output, entries are the
value's coordinates then the shape's geometry, and every pair is a distinct task."""
import json
from pathlib import Path

import pytest

from dynnet_d2.config import load_config
from dynnet_d2.data.classification_builtin import pair_classes
from dynnet_d2.methods.tafe import benchmark
from dynnet_d2.methods.tafe.descriptions import (
    TEXTURE_ATTRIBUTES,
    TEXTURE_PROPERTIES,
    structured_pair_descriptions,
)
from dynnet_d2.methods.tafe.head import task_config

REPO = Path(__file__).resolve().parents[3]
SHAPES = json.loads((REPO / "configs/TAFE/shapes_attributes.json").read_text())


@pytest.mark.parametrize("attribute", ["color", "texture"])
def test_shipped_files_are_the_generators_output(attribute):
    shipped = json.loads((REPO / benchmark.structured_descriptions(attribute)).read_text())
    assert shipped == structured_pair_descriptions(attribute, SHAPES)
    assert list(shipped) == pair_classes(attribute)
    assert len({tuple(v) for v in shipped.values()}) == len(shipped)  # distinct tasks


def test_entries_by_hand():
    color = structured_pair_descriptions("color", SHAPES)
    assert color["red circle"] == pytest.approx([215 / 255, 35 / 255, 35 / 255] + SHAPES["circle"])
    texture = structured_pair_descriptions("texture", SHAPES)
    # dots: two tones, periodic, a two-dimensional pattern of round elements
    assert texture["dots star"] == [1, 1, 0, 1, 1, 0, 0] + SHAPES["star"]
    assert all(len(v) == len(TEXTURE_PROPERTIES) for v in TEXTURE_ATTRIBUTES.values())
    assert len({tuple(v) for v in TEXTURE_ATTRIBUTES.values()}) == len(TEXTURE_ATTRIBUTES)


def test_missing_shape_and_unknown_attribute_are_named():
    with pytest.raises(ValueError, match=r"no entry for shape\(s\) \['circle'\]"):
        structured_pair_descriptions("color", {k: v for k, v in SHAPES.items() if k != "circle"})
    with pytest.raises(KeyError):
        structured_pair_descriptions("size", SHAPES)


def test_a_structured_arm_reads_the_file_as_its_tasks():
    arm = benchmark.arms()["pairs_color_tafe_structured"]
    cfg = load_config(arm.config, list(arm.opts))
    tasks = task_config(cfg)
    assert tuple(tasks["descriptions"].shape) == (160, 17) and int(tasks["seen"].sum()) == 120
    assert tasks["descriptions"][0].tolist() == pytest.approx(
        [215 / 255, 35 / 255, 35 / 255] + SHAPES["circle"])  # "red circle", the first pair
