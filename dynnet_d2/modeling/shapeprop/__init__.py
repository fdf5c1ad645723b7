"""ShapeProp (thesis ch. 8): semi-supervised instance segmentation with box-supervised saliency
and learned saliency propagation, a shape prior for the mask head.

Importing this package registers ``ShapePropROIHeads`` in Detectron2's ``ROI_HEADS_REGISTRY``
and ``ShapePropMaskHead`` in its ``ROI_MASK_HEAD_REGISTRY`` (:mod:`.heads`); their parts are the
saliency head and its multiple-instance-learning loss (:mod:`.saliency`), the message-passing
propagation (:mod:`.propagation`) and the fusion of the Shape Activation with the mask head's
input (:mod:`.fusion`).
"""
from .fusion import ShapeActivationEncoder
from .heads import ShapePropMaskHead, ShapePropROIHeads
from .propagation import SaliencyPropagation, normalized_kernels, propagate
from .saliency import SaliencyHead, mil_bag_labels, mil_loss, select_class_maps

__all__ = ["SaliencyHead", "SaliencyPropagation", "ShapeActivationEncoder", "ShapePropMaskHead",
           "ShapePropROIHeads", "mil_bag_labels", "mil_loss", "normalized_kernels", "propagate",
           "select_class_maps"]
