"""ShapeProp's ROI heads and mask head (thesis Sec. 8.3, Fig. 8.3): box-supervised saliency, its
propagation to a Shape Activation, and the Shape Activation fused with the mask head's input.

``ShapePropROIHeads`` (``MODEL.ROI_HEADS.NAME``) is Detectron2's ``StandardROIHeads`` with two
hooks overridden, each calling ``super()``:

* ``label_and_sample_proposals`` adds ``gt_mil_labels`` (R, K) to every sampled proposal, its
  bag labels of Eq. 8.2 against all ground-truth boxes of the image;
* ``_forward_mask`` adds, in training, the MIL loss (Eq. 8.3) of the saliency maps of all
  sampled proposals, foreground and background (``loss_mil``).

``ShapePropMaskHead`` (``MODEL.ROI_MASK_HEAD.NAME``) runs on the mask branch's RoI features
(R, D, S, S) of the foreground proposals (training) or detections (inference): saliency maps,
the one of the matched (training) or predicted (inference) class, propagation to the Shape
Activation (R, 1, S, S) and its latent features (R, C, S, S); the latent features are
concatenated to the RoI features, and the partially supervised mask head
(:class:`~dynnet_d2.modeling.partial_masks.PartialMaskRCNNConvUpsampleHead`, class-agnostic
with Detectron2's ``CLS_AGNOSTIC_MASK``) predicts the masks from the ``D + C`` channels. In
training the Shape Activation gets a binary cross-entropy against the ground-truth mask cropped
to the proposal (``loss_shape``), on the instances that have a mask only. At inference every
detection also gets ``pred_saliency`` and ``pred_shape`` (S x S probabilities) for analysis.
"""
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec, cat
from detectron2.modeling import ROI_HEADS_REGISTRY, ROI_MASK_HEAD_REGISTRY, StandardROIHeads
from detectron2.structures import Instances
from torch.nn import functional as F

from ..partial_masks import PartialMaskRCNNConvUpsampleHead, keep_instances_with_masks
from .propagation import SaliencyPropagation
from .saliency import (
    AGGREGATIONS,
    SaliencyHead,
    mil_bag_labels,
    mil_loss,
    select_class_maps,
)


def shape_loss(shape_logits: torch.Tensor, instances: List[Instances]) -> torch.Tensor:
    """Binary cross-entropy (mean) of the Shape Activation logits (R, 1, S, S) against each
    proposal's ground-truth mask cropped and resized to S x S; 0 without instances."""
    if shape_logits.shape[0] == 0:
        return shape_logits.sum() * 0.0
    side = shape_logits.shape[-1]
    targets = cat([i.gt_masks.crop_and_resize(i.proposal_boxes.tensor, side)
                   for i in instances if len(i)]).to(shape_logits)
    return F.binary_cross_entropy_with_logits(shape_logits[:, 0], targets)


@ROI_MASK_HEAD_REGISTRY.register()
class ShapePropMaskHead(PartialMaskRCNNConvUpsampleHead):
    """Saliency, propagation and fusion in front of the partially supervised mask head (see
    the module docstring)."""

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, saliency: SaliencyHead,
                 propagation: SaliencyPropagation, shape_loss_weight: float, **kwargs):
        fused = ShapeSpec(channels=input_shape.channels + propagation.decoder.in_channels,
                          height=input_shape.height, width=input_shape.width)
        super().__init__(fused, **kwargs)
        # Detectron2's head is an nn.Sequential whose ``layers`` runs every child in order: keep
        # its own layers apart from the ShapeProp modules added below
        self.mask_layers = tuple(self)
        self.saliency = saliency
        self.propagation = propagation
        self.shape_loss_weight = shape_loss_weight

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        sp = cfg.MODEL.SHAPEPROP
        ret["saliency"] = SaliencyHead(
            in_channels=input_shape.channels, num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            num_convs=sp.SALIENCY_NUM_CONV, conv_dim=sp.SALIENCY_CONV_DIM)
        ret["propagation"] = SaliencyPropagation(
            in_channels=input_shape.channels, latent_dim=sp.LATENT_DIM, window=sp.WINDOW,
            num_convs=sp.PROPAGATION_NUM_CONV, conv_dim=sp.PROPAGATION_CONV_DIM,
            channel_agnostic=sp.CHANNEL_AGNOSTIC, steps=sp.STEPS if sp.STEPS > 0 else None)
        ret["shape_loss_weight"] = sp.SHAPE_LOSS_WEIGHT
        return ret

    def layers(self, x):
        for layer in self.mask_layers:
            x = layer(x)
        return x

    def forward(self, x, instances: List[Instances]):
        field = "gt_classes" if self.training else "pred_classes"
        classes = cat([i.get(field) for i in instances]) if instances else x.new_zeros(0)
        saliency = select_class_maps(self.saliency(x), classes)
        shape_logits, latent = self.propagation(saliency, x)
        out = super().forward(cat([x, latent], dim=1), instances)
        if self.training:
            valid_logits, valid = keep_instances_with_masks(shape_logits, instances)
            out["loss_shape"] = shape_loss(valid_logits, valid) * self.shape_loss_weight
            return out
        sizes = [len(i) for i in instances]
        for i, s, a in zip(out, saliency.sigmoid().split(sizes), shape_logits.sigmoid()
                           .split(sizes)):
            i.pred_saliency, i.pred_shape = s[:, 0], a[:, 0]
        return out


@ROI_HEADS_REGISTRY.register()
class ShapePropROIHeads(StandardROIHeads):
    """StandardROIHeads plus the MIL loss of the saliency maps (see the module docstring)."""

    @configurable
    def __init__(self, *, mil_iou: float, mil_aggregation: str, mil_loss_weight: float,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(getattr(self, "mask_head", None), ShapePropMaskHead):
            raise ValueError("MODEL.ROI_HEADS.NAME='ShapePropROIHeads' needs the ShapeProp mask "
                             "head: set MODEL.MASK_ON True and MODEL.ROI_MASK_HEAD.NAME "
                             "'ShapePropMaskHead'")
        if mil_aggregation not in AGGREGATIONS:
            raise ValueError(f"MODEL.SHAPEPROP.MIL_AGGREGATION={mil_aggregation!r}; expected one "
                             f"of {AGGREGATIONS}")
        self.mil_iou, self.mil_aggregation = mil_iou, mil_aggregation
        self.mil_loss_weight = mil_loss_weight

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        sp = cfg.MODEL.SHAPEPROP
        ret.update(mil_iou=sp.MIL_IOU, mil_aggregation=sp.MIL_AGGREGATION,
                   mil_loss_weight=sp.MIL_LOSS_WEIGHT)
        return ret

    @torch.no_grad()
    def label_and_sample_proposals(self, proposals: List[Instances],
                                   targets: List[Instances]) -> List[Instances]:
        sampled = super().label_and_sample_proposals(proposals, targets)
        for p, t in zip(sampled, targets):
            p.gt_mil_labels = mil_bag_labels(p.proposal_boxes, t.gt_boxes, t.gt_classes,
                                             self.num_classes, self.mil_iou)
        return sampled

    def _forward_mask(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        if not self.training:
            return super()._forward_mask(features, instances)
        pooled = self.mask_pooler([features[f] for f in self.mask_in_features],
                                  [x.proposal_boxes for x in instances])
        labels = cat([x.gt_mil_labels for x in instances])
        loss = mil_loss(self.mask_head.saliency(pooled), labels, self.mil_aggregation)
        losses = super()._forward_mask(features, instances)
        losses["loss_mil"] = loss * self.mil_loss_weight
        return losses
