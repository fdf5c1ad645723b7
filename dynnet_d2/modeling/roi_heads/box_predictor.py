"""A registry of box predictors (the last layer of the box head: classifier + box regressor).

Detectron2 builds ``FastRCNNOutputLayers`` directly inside ``StandardROIHeads``; few-shot methods
swap it (TFA's cosine classifier, thesis Eq. 7.2). ``MODEL.ROI_HEADS.OUTPUT_LAYER`` names the
predictor, as in TFA's fsdet. Detectron2's ``FastRCNNOutputLayers`` is registered under its own
name; a predictor takes ``(cfg, input_shape)`` like it and returns ``(scores, deltas)`` of shapes
``(R, K + 1)`` and ``(R, 4K)`` (or ``(R, 4)`` class-agnostic) for ``R`` boxes.
"""
from typing import Set

from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from detectron2.utils.registry import Registry
from torch import nn

BOX_PREDICTOR_REGISTRY = Registry("BOX_PREDICTOR")
BOX_PREDICTOR_REGISTRY.__doc__ = """Box predictors selected by MODEL.ROI_HEADS.OUTPUT_LAYER."""
BOX_PREDICTOR_REGISTRY.register(FastRCNNOutputLayers)


# ROI heads that build their box predictor with build_box_predictor, declared with
# uses_box_predictor_registry (others ignore OUTPUT_LAYER).
HEADS_WITH_OUTPUT_LAYER: Set[str] = set()


def uses_box_predictor_registry(heads_class: type) -> type:
    """Class decorator of ROI heads: declare that they build their box predictor from
    ``MODEL.ROI_HEADS.OUTPUT_LAYER`` (:func:`build_box_predictor`)."""
    HEADS_WITH_OUTPUT_LAYER.add(heads_class.__name__)
    return heads_class


def check_output_layer_is_used(cfg) -> None:
    """``ValueError`` when ``MODEL.ROI_HEADS.OUTPUT_LAYER`` asks for another predictor than
    Detectron2's but ``MODEL.ROI_HEADS.NAME`` would ignore it (fsdet configs name their own
    "StandardROIHeads", which in Detectron2 always builds the FC predictor)."""
    layer, heads = cfg.MODEL.ROI_HEADS.OUTPUT_LAYER, cfg.MODEL.ROI_HEADS.NAME
    if layer != FastRCNNOutputLayers.__name__ and heads not in HEADS_WITH_OUTPUT_LAYER:
        raise ValueError(
            f"MODEL.ROI_HEADS.OUTPUT_LAYER={layer!r} is ignored by MODEL.ROI_HEADS.NAME="
            f"{heads!r}; set MODEL.ROI_HEADS.NAME to one of {sorted(HEADS_WITH_OUTPUT_LAYER)}, "
            f"the heads that build their predictor from it (fsdet's StandardROIHeads did)"
        )


def build_box_predictor(cfg, input_shape: ShapeSpec) -> nn.Module:
    """The box predictor ``MODEL.ROI_HEADS.OUTPUT_LAYER`` names, for features of ``input_shape``."""
    return BOX_PREDICTOR_REGISTRY.get(cfg.MODEL.ROI_HEADS.OUTPUT_LAYER)(cfg, input_shape)
