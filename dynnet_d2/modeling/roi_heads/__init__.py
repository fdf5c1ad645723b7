"""ROI-head pieces Detectron2 has no registry for: box predictors chosen by
``MODEL.ROI_HEADS.OUTPUT_LAYER`` (:mod:`.box_predictor`), and the declaration of the ROI heads that
build theirs from it."""
from .box_predictor import (
    BOX_PREDICTOR_REGISTRY,
    HEADS_WITH_OUTPUT_LAYER,
    build_box_predictor,
    check_output_layer_is_used,
    uses_box_predictor_registry,
)

__all__ = ["BOX_PREDICTOR_REGISTRY", "HEADS_WITH_OUTPUT_LAYER", "build_box_predictor",
           "check_output_layer_is_used", "uses_box_predictor_registry"]
