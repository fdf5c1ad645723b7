"""ShapeProp (thesis ch. 8): semi-supervised instance segmentation with box-supervised saliency
and learned saliency propagation, a shape prior for the mask head.

Importing this package registers ``ShapePropROIHeads`` in Detectron2's ``ROI_HEADS_REGISTRY``
and ``ShapePropMaskHead`` in its ``ROI_MASK_HEAD_REGISTRY`` (:mod:`.heads`); their parts are the
saliency head and its multiple-instance-learning loss (:mod:`.saliency`), the message-passing
propagation (:mod:`.propagation`) and the fusion of the Shape Activation with the mask head's
input (:mod:`.fusion`). It also registers the partially supervised Mask R-CNN baseline's mask
head (:mod:`.partial_mask_head`) and ShapeProp's config keys (:mod:`.config`); the benchmark's
metrics and figures are in :mod:`.analysis`, its arms and report in :mod:`.benchmark`
(tools/benchmark_shapeprop.py).
"""
from . import config  # noqa: F401  (registers add_shapeprop_config)
from .fusion import ShapeActivationEncoder
from .heads import ShapePropMaskHead, ShapePropROIHeads
from .partial_mask_head import PartialMaskRCNNConvUpsampleHead, keep_instances_with_masks
from .propagation import SaliencyPropagation, normalized_kernels, propagate
from .saliency import SaliencyHead, mil_bag_labels, mil_loss, select_class_maps

__all__ = ["PartialMaskRCNNConvUpsampleHead", "SaliencyHead", "SaliencyPropagation",
           "ShapeActivationEncoder", "ShapePropMaskHead", "ShapePropROIHeads",
           "keep_instances_with_masks", "mil_bag_labels", "mil_loss", "normalized_kernels",
           "propagate", "select_class_maps"]
