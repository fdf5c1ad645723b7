"""ShapeProp's ROI heads and mask head (thesis Sec. 8.3, Fig. 8.3): box-supervised saliency, its
propagation to a Shape Activation, and the Shape Activation fused with the mask head's input.

``ShapePropROIHeads`` (``MODEL.ROI_HEADS.NAME``) is Detectron2's ``StandardROIHeads`` with two
hooks overridden:

* ``label_and_sample_proposals`` (calls ``super()``) adds ``gt_mil_labels`` (R, K) to every
  sampled proposal, its bag labels of Eq. 8.2 against all ground-truth boxes of the image;
* ``_forward_mask`` in training pools the RoI features of the MIL bags once, the foreground
  proposals and a sampled fraction of the background ones (``MIL_NEGATIVE_FRACTION``), runs the
  saliency head's trunk on them once, takes the MIL loss (Eq. 8.3) of their maps (``loss_mil``)
  and hands the foreground rows (features and trunk, a leading slice) to the mask head. This
  is the body of Detectron2's ``StandardROIHeads._forward_mask`` (v0.6-main: foreground
  selection, then the mask pooler) with the negatives added; a test pins the mask head's losses
  to the upstream path's.
  Inference is ``super()``'s.

``ShapePropMaskHead`` (``MODEL.ROI_MASK_HEAD.NAME``) runs on the mask branch's RoI features
(R, D, S, S) of the foreground proposals (training; only those whose instance has a mask, since
no loss reads the others) or detections (inference): the saliency map of the matched (training)
or predicted (inference) class, its propagation to the Shape Activation (R, 1, S, S), and the
fusion (``MODEL.SHAPEPROP.FUSION``): "activation" (the thesis and the reference code) re-encodes
the Shape Activation to F channels (:mod:`.fusion`), "latent" takes the propagation's C latent
channels; either is concatenated to the RoI features, and the partially supervised mask head
(:class:`~.partial_mask_head.PartialMaskRCNNConvUpsampleHead`, class-agnostic with Detectron2's
``CLS_AGNOSTIC_MASK``) predicts the masks from the ``D + F`` (or ``D + C``)
channels. With ``SHARE_FEATURES`` the kernel predictor reads the saliency head's trunk instead of
its own conv layers (the reference code's ``SHARE_FEATURE``). In training the Shape Activation
gets a binary cross-entropy against the ground-truth mask cropped to the proposal
(``loss_shape``). At inference every detection also gets ``pred_saliency`` and ``pred_shape``
(S x S probabilities) for analysis.
"""
from typing import Dict, List, Optional

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec, cat
from detectron2.modeling import ROI_HEADS_REGISTRY, ROI_MASK_HEAD_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads.roi_heads import select_foreground_proposals
from detectron2.structures import Instances
from torch.nn import functional as F

from .fusion import FUSIONS, ShapeActivationEncoder
from .partial_mask_head import PartialMaskRCNNConvUpsampleHead
from .propagation import SaliencyPropagation
from .saliency import AGGREGATIONS, SaliencyHead, mil_bag_labels, mil_loss


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
                 propagation: SaliencyPropagation, fusion: str, share_features: bool,
                 shape_loss_weight: float, fusion_num_convs: int = 2,
                 fusion_conv_dim: int = 16, **kwargs):
        """
        Args:
            input_shape: the RoI features' shape (D channels, S x S).
            saliency: the saliency ("activating") head.
            propagation: the saliency propagation; its kernel predictor reads D channels, or
                the saliency head's trunk channels when ``share_features``.
            fusion: "activation" (the Shape Activation re-encoded to ``fusion_conv_dim``
                channels by ``fusion_num_convs`` convolutions) or "latent" (the propagation's
                latent channels) is concatenated to the RoI features.
            share_features: the kernel predictor reads the saliency head's trunk features.
            shape_loss_weight: weight of ``loss_shape``.
            kwargs: Detectron2's ``MaskRCNNConvUpsampleHead`` arguments.
        """
        if fusion not in FUSIONS:
            raise ValueError(f"MODEL.SHAPEPROP.FUSION={fusion!r}; expected one of {FUSIONS}")
        encoder = (ShapeActivationEncoder(num_convs=fusion_num_convs, conv_dim=fusion_conv_dim)
                   if fusion == "activation" else None)
        prior = encoder.out_channels if encoder is not None else propagation.latent_dim
        super().__init__(ShapeSpec(channels=input_shape.channels + prior,
                                   height=input_shape.height, width=input_shape.width), **kwargs)
        # Detectron2's head is an nn.Sequential whose ``layers`` runs every child in order: keep
        # its own layers apart from the ShapeProp modules added below
        self.mask_layers = tuple(self)
        self.saliency = saliency
        self.propagation = propagation
        self.fusion = encoder
        self.share_features = share_features
        self.shape_loss_weight = shape_loss_weight

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        sp = cfg.MODEL.SHAPEPROP
        saliency = SaliencyHead(
            in_channels=input_shape.channels, num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            num_convs=sp.SALIENCY_NUM_CONV, conv_dim=sp.SALIENCY_CONV_DIM)
        ret["saliency"] = saliency
        ret["propagation"] = SaliencyPropagation(
            in_channels=saliency.out_channels if sp.SHARE_FEATURES else input_shape.channels,
            latent_dim=sp.LATENT_DIM, window=sp.WINDOW, num_convs=sp.PROPAGATION_NUM_CONV,
            conv_dim=sp.PROPAGATION_CONV_DIM,
            kernel_num_convs=0 if sp.SHARE_FEATURES else sp.PROPAGATION_NUM_CONV,
            kernel_conv_size=sp.KERNEL_CONV_SIZE, channel_agnostic=sp.CHANNEL_AGNOSTIC,
            steps=sp.STEPS if sp.STEPS > 0 else None)
        ret.update(fusion=sp.FUSION, fusion_num_convs=sp.FUSION_NUM_CONV,
                   fusion_conv_dim=sp.FUSION_CONV_DIM, share_features=sp.SHARE_FEATURES,
                   shape_loss_weight=sp.SHAPE_LOSS_WEIGHT)
        return ret

    def layers(self, x):
        for layer in self.mask_layers:
            x = layer(x)
        return x

    def forward(self, x, instances: List[Instances], trunk: Optional[torch.Tensor] = None):
        """``x`` (R, D, S, S) RoI features; ``trunk`` (R, T, S, S) the saliency head's trunk
        features of the same RoIs when already computed (training, by the ROI heads)."""
        if self.training and instances and instances[0].has("gt_mask_valid"):
            valid = cat([i.gt_mask_valid for i in instances])
            x, instances = x[valid], [i[i.gt_mask_valid] for i in instances]
            trunk = None if trunk is None else trunk[valid]
        field = "gt_classes" if self.training else "pred_classes"
        classes = cat([i.get(field) for i in instances]) if instances else x.new_zeros(0)
        trunk = self.saliency.trunk(x) if trunk is None else trunk
        saliency = self.saliency.class_maps(trunk, classes)
        shape_logits, latent = self.propagation(saliency, trunk if self.share_features else x)
        prior = latent if self.fusion is None else self.fusion(shape_logits)
        out = super().forward(cat([x, prior], dim=1), instances)
        if self.training:
            out["loss_shape"] = shape_loss(shape_logits, instances) * self.shape_loss_weight
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
                 mil_negative_fraction: float = 1.0, **kwargs):
        """
        Args:
            mil_iou: IoU above which a proposal is a positive bag of a box's class (Eq. 8.2).
            mil_aggregation: "avg" or "max", the 2-D aggregation of Eq. 8.3.
            mil_loss_weight: weight of ``loss_mil``.
            mil_negative_fraction: fraction in (0, 1] of each image's sampled background
                proposals that are MIL bags (drawn at random every iteration; at least one).
            kwargs: Detectron2's ``StandardROIHeads`` arguments.
        """
        super().__init__(**kwargs)
        if not isinstance(getattr(self, "mask_head", None), ShapePropMaskHead):
            raise ValueError("MODEL.ROI_HEADS.NAME='ShapePropROIHeads' needs the ShapeProp mask "
                             "head: set MODEL.MASK_ON True and MODEL.ROI_MASK_HEAD.NAME "
                             "'ShapePropMaskHead'")
        if mil_aggregation not in AGGREGATIONS:
            raise ValueError(f"MODEL.SHAPEPROP.MIL_AGGREGATION={mil_aggregation!r}; expected one "
                             f"of {AGGREGATIONS}")
        if not 0.0 < mil_negative_fraction <= 1.0:
            raise ValueError(f"MODEL.SHAPEPROP.MIL_NEGATIVE_FRACTION={mil_negative_fraction}: "
                             f"expected a fraction in (0, 1]")
        self.mil_iou, self.mil_aggregation = mil_iou, mil_aggregation
        self.mil_loss_weight = mil_loss_weight
        self.mil_negative_fraction = mil_negative_fraction

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        sp = cfg.MODEL.SHAPEPROP
        ret.update(mil_iou=sp.MIL_IOU, mil_aggregation=sp.MIL_AGGREGATION,
                   mil_loss_weight=sp.MIL_LOSS_WEIGHT,
                   mil_negative_fraction=sp.MIL_NEGATIVE_FRACTION)
        return ret

    @torch.no_grad()
    def label_and_sample_proposals(self, proposals: List[Instances],
                                   targets: List[Instances]) -> List[Instances]:
        sampled = super().label_and_sample_proposals(proposals, targets)
        for p, t in zip(sampled, targets):
            p.gt_mil_labels = mil_bag_labels(p.proposal_boxes, t.gt_boxes, t.gt_classes,
                                             self.num_classes, self.mil_iou)
        return sampled

    def negative_bags(self, proposals: Instances) -> Instances:
        """A random ``mil_negative_fraction`` of the image's background proposals (>= 1 when
        there is any)."""
        background = (proposals.gt_classes == self.num_classes).nonzero().squeeze(1)
        keep = max(1, round(self.mil_negative_fraction * len(background)))
        if keep >= len(background):
            return proposals[background]
        chosen = torch.randperm(len(background), device=background.device)[:keep]
        return proposals[background[chosen]]

    def _forward_mask(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        if not self.training:
            return super()._forward_mask(features, instances)
        foreground, _ = select_foreground_proposals(instances, self.num_classes)
        negatives = [self.negative_bags(i) for i in instances]
        levels = [features[f] for f in self.mask_in_features]
        # the foreground bags of every image first, so that the mask head reads a leading slice
        pooled = self.mask_pooler(levels, [f.proposal_boxes for f in foreground])
        trunk = self.mask_head.saliency.trunk(cat([
            pooled, self.mask_pooler(levels, [n.proposal_boxes for n in negatives])]))
        loss = mil_loss(self.mask_head.saliency.maps(trunk),
                        cat([b.gt_mil_labels for b in foreground + negatives]),
                        self.mil_aggregation)
        losses = self.mask_head(pooled, foreground, trunk=trunk[:len(pooled)])
        losses["loss_mil"] = loss * self.mil_loss_weight
        return losses
