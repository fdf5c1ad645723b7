"""Mask heads for partially supervised instance segmentation (thesis ch. 8): instances whose
ground truth has no mask (``gt_mask_valid`` False, set by
:class:`~dynnet_d2.data.mappers.CheckedDatasetMapper`) train the box branch only.

Detectron2's mask loss assumes every foreground proposal has a mask. The head below gives its
parent only the RoIs (features and proposals) whose matched instance has one: the mask head
works per RoI, so this is the parent's loss over the valid RoIs alone. A batch where none has a
mask gives a zero loss that still reaches every parameter (Detectron2's empty-mask path).
"""
import torch
from detectron2.layers import cat
from detectron2.modeling import ROI_MASK_HEAD_REGISTRY
from detectron2.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead


def keep_instances_with_masks(features: torch.Tensor, instances):
    """The RoI ``features`` (R, C, S, S) and per-image proposals whose ``gt_mask_valid`` is
    True; unchanged when the proposals carry no such flag."""
    if not instances or not instances[0].has("gt_mask_valid"):
        return features, instances
    valid = cat([i.gt_mask_valid for i in instances])
    return features[valid], [i[i.gt_mask_valid] for i in instances]


@ROI_MASK_HEAD_REGISTRY.register()
class PartialMaskRCNNConvUpsampleHead(MaskRCNNConvUpsampleHead):
    """Detectron2's ``MaskRCNNConvUpsampleHead`` whose training loss skips the RoIs of instances
    without a mask; inference is the parent's."""

    def forward(self, x, instances):
        if self.training:
            x, instances = keep_instances_with_masks(x, instances)
        return super().forward(x, instances)
