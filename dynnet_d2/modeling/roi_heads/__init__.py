"""ROI-head pieces Detectron2 has no registry for: box predictors chosen by
``MODEL.ROI_HEADS.OUTPUT_LAYER`` (:mod:`.box_predictor`)."""
from .box_predictor import (
                            BOX_PREDICTOR_REGISTRY,
                            HEADS_WITH_OUTPUT_LAYER,
                            build_box_predictor,
                            check_output_layer_is_used,
)

__all__ = ["BOX_PREDICTOR_REGISTRY", "HEADS_WITH_OUTPUT_LAYER", "build_box_predictor",
           "check_output_layer_is_used"]
