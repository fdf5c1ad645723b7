"""``TFAROIHeads``: Detectron2's ``StandardROIHeads`` whose box predictor is chosen by
``MODEL.ROI_HEADS.OUTPUT_LAYER`` (``FastRCNNOutputLayers``: TFA w/ fc; ``CosineSimOutputLayers``:
TFA w/ cos, Eq. 7.2). Everything else (pooling, box head, losses, inference) is Detectron2's."""
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads

from ...modeling.roi_heads import build_box_predictor, uses_box_predictor_registry


@ROI_HEADS_REGISTRY.register()
@uses_box_predictor_registry
class TFAROIHeads(StandardROIHeads):
    """``StandardROIHeads`` with the box predictor of ``MODEL.ROI_HEADS.OUTPUT_LAYER``."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        parts = super()._init_box_head(cfg, input_shape)
        parts["box_predictor"] = build_box_predictor(cfg, parts["box_head"].output_shape)
        return parts
