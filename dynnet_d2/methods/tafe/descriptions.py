"""Attribute-structured task descriptions of the compositional pairs (thesis Table 5.5's task
encoding ablation: word2vec vs one-hot there, structured vs one-hot here).

The ``shapes_pairs_{attribute}_*`` views describe a pair ``"<value> <shape>"`` by a one-hot value
then a one-hot shape (their ``class_descriptions``), which carries no similarity between values
or shapes. The structured description of the same pair is the value's own coordinates then the
shape's geometry:

* colour: its RGB in [0, 1] (the renderer's :data:`~dynnet_d2.data.synthetic.COLORS`);
* texture: :data:`TEXTURE_ATTRIBUTES`, 7 binary properties read off the renderer
  (``dynnet_d2/data/synthetic/render.py``), every texture distinct;
* shape: the 14 hand-written geometry attributes of ``configs/TAFE/shapes_attributes.json``.

:func:`structured_pair_descriptions` gives the table ``{pair: [floats]}`` that
``configs/TAFE/shapes_{color,texture}pairs_structured.json`` hold (a test keeps them equal), for
``MODEL.TAFE.DESCRIPTIONS``.
"""
from typing import Dict, List, Mapping

from ...data.classification_builtin import PAIR_ATTRIBUTES, pair_classes
from ...data.synthetic import ALL_CLASSES, COLORS

TEXTURE_PROPERTIES = ("two tones", "periodic", "oriented", "two-dimensional pattern",
                      "round elements", "smooth change", "random per pixel")
TEXTURE_ATTRIBUTES: Dict[str, List[float]] = {
    "solid": [0, 0, 0, 0, 0, 0, 0],
    "stripes": [1, 1, 1, 0, 0, 0, 0],
    "checker": [1, 1, 0, 1, 0, 0, 0],
    "dots": [1, 1, 0, 1, 1, 0, 0],
    "gradient": [1, 0, 1, 0, 0, 1, 0],
    "noise": [1, 0, 0, 0, 0, 0, 1],
}


def value_description(attribute: str, value: str) -> List[float]:
    """The structured description of one value of ``attribute`` (``color`` or ``texture``)."""
    if attribute == "color":
        return [round(c / 255.0, 6) for c in COLORS[value]]
    if attribute == "texture":
        return [float(v) for v in TEXTURE_ATTRIBUTES[value]]
    raise ValueError(f"attribute {attribute!r}: expected one of {sorted(PAIR_ATTRIBUTES)}")


def structured_pair_descriptions(attribute: str, shape_attributes: Mapping[str, List[float]]
                                 ) -> Dict[str, List[float]]:
    """``{"<value> <shape>": value description + shape attributes}`` for every pair of
    ``attribute``, in :func:`pair_classes` order; ``shape_attributes`` is the shapes' table
    (``configs/TAFE/shapes_attributes.json``; keys starting with ``_`` are comments)."""
    missing = [s for s in ALL_CLASSES if s not in shape_attributes]
    if missing:
        raise ValueError(f"shape attributes: no entry for shape(s) {missing}")
    table = {}
    for pair in pair_classes(attribute):
        value, shape = pair.split(" ", 1)
        table[pair] = value_description(attribute, value) + [float(v) for v in
                                                             shape_attributes[shape]]
    return table
