"""ShapeProp (thesis ch. 8): semi-supervised instance segmentation with box-supervised saliency
and learned saliency propagation, a shape prior for the mask head.

Work in progress (issue 11): the saliency head and its multiple-instance-learning loss
(:mod:`.saliency`) and the message-passing propagation (:mod:`.propagation`) are here, tested;
they are not registered in Detectron2's registries yet (the ROI heads that use them come next),
so importing this package registers nothing.
"""
from .propagation import SaliencyPropagation, normalized_kernels, propagate
from .saliency import SaliencyHead, mil_bag_labels, mil_loss, select_class_maps

__all__ = ["SaliencyHead", "SaliencyPropagation", "mil_bag_labels", "mil_loss",
           "normalized_kernels", "propagate", "select_class_maps"]
