"""The one-stage reweighting detector, the thesis' own form (ch. 6, Fig. 6.2, Eq. 6.1-6.3): a
YOLOv2-style dense head on one backbone level, its meta features reweighted per class.

Shapes, for a batch of B images, N classes (the episode's in training), A anchors and the
level's ``H x W`` cells of ``stride`` pixels:

- meta features ``F = D(I)``: the level ``MODEL.FSRW.IN_FEATURE`` through ``META_CONV_DIMS``
  3x3 convolutions, each with GroupNorm and leaky ReLU (YOLOv2's convolution-norm-leaky blocks,
  GroupNorm for batches of 4), ``(B, m, H, W)``;
- class-specific features ``F_i = F (x) w_i`` (Eq. 6.1, :func:`~.reweighting.reweight`),
  ``(B, N, m, H, W)``;
- the prediction module P, one 1x1 convolution shared by the classes, gives per class, anchor
  and cell ``{o_i, x_i, y_i, w_i, h_i, c_i}`` (Eq. 6.2): predictions ``(B, N, A, 6, H, W)``.

Boxes are YOLOv2's: centre ``((x + sigmoid(t_x)) * stride, (y + sigmoid(t_y)) * stride)`` of
cell ``(x, y)``, size ``(a_w * exp(t_w), a_h * exp(t_h))`` of anchor ``(a_w, a_h)`` in input
pixels (``MODEL.FSRW.ANCHORS``). A detection of class i scores ``sigmoid(o_i) * softmax_i(c)``
(Eq. 6.3: calibrated across the N classes) with the softmax loss, ``sigmoid(o_i) *
sigmoid(c_i)`` with the binary ones.

Targets (:func:`assign_targets`, YOLOv2's): a ground-truth box of class k belongs to the cell
holding its centre and to the anchor whose shape overlaps its own most (both centred); that
slot is class k's positive: objectness 1, box targets ``(cx / stride - x, cy / stride - y,
log(w / a_w), log(h / a_h))``; of two boxes on one slot the larger is kept. Every other slot
of every class is a negative (objectness 0) unless its decoded box overlaps a box of that class
by more than ``IGNORE_IOU``; a random ``NEGATIVES_PER_POSITIVE`` times as many negatives as
positives enter the objectness loss (the thesis balances them "by not computing some loss from
negatives samples").

Losses (each the thesis' ``L_obj``, ``L_bbx``, ``L_c``; weight 1): ``loss_obj`` binary
cross-entropy over the positives and the sampled negatives (their mean), ``loss_box`` squared
error of ``(sigmoid(t_x), sigmoid(t_y), t_w, t_h)`` summed over the 4 and averaged over the
positives, ``loss_cls`` the class loss ``MODEL.FSRW.LOSS`` (:func:`~.losses.class_loss`) on the
class scores of every episode class at each positive slot.
"""
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec, batched_nms
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.structures import Boxes, Instances, pairwise_iou
from fvcore.nn.weight_init import c2_msra_fill
from torch import nn

from ...modeling.meta_arch import MetaArchitectureNeeds, declare_meta_architecture
from .class_vectors import ClassVectors
from .losses import CLASS_LOSSES, class_loss
from .meta_arch import SupportReweighting, check_class_vectors
from .reweighting import check_class_scorer, reweight
from .surgery import ONE_STAGE_SCORE, PHASE_2_FIX, per_class_predictor_must_fit

PREDICTIONS_PER_ANCHOR = 6  # objectness, t_x, t_y, t_w, t_h, class score
MAX_LOG_SIZE = math.log(1000.0 / 16)  # exp(t_w), exp(t_h) clamped as Detectron2's deltas are


def shape_iou(sizes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``(G, 2)`` (w, h) and anchors ``(A, 2)`` sharing a centre -> ``(G, A)``."""
    inter = (torch.minimum(sizes[:, None, 0], anchors[None, :, 0])
             * torch.minimum(sizes[:, None, 1], anchors[None, :, 1]))
    union = sizes.prod(1)[:, None] + anchors.prod(1)[None, :] - inter
    return inter / union


def assign_targets(boxes: torch.Tensor, anchors: torch.Tensor, stride: int,
                   grid: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """YOLOv2's assignment (module docstring) of boxes ``(G, 4)`` (x0, y0, x1, y1 in input
    pixels) to anchors ``(A, 2)`` on a ``grid`` = (H, W) of cells of ``stride`` pixels.

    Returns ``slots`` ``(P,)``: flat indices into ``(A, H, W)``; ``which`` ``(P,)``: the box of
    each slot; ``targets`` ``(P, 4)``: ``(t_x*, t_y*, t_w*, t_h*)``. ``P <= G``: of boxes on one
    slot only the largest (the first of equal ones) is kept."""
    height, width = grid
    if len(boxes) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return empty, empty, boxes.new_zeros(0, 4)
    sizes = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
    x = centres[:, 0].floor().long().clamp(0, width - 1)
    y = centres[:, 1].floor().long().clamp(0, height - 1)
    anchor = shape_iou(sizes, anchors).argmax(dim=1)
    slots = (anchor * height + y) * width + x
    targets = torch.stack([centres[:, 0] - x, centres[:, 1] - y,
                           torch.log(sizes[:, 0] / anchors[anchor, 0]),
                           torch.log(sizes[:, 1] / anchors[anchor, 1])], dim=1)
    order = torch.sort(sizes.prod(1), descending=True, stable=True).indices
    kept, seen = [], set()
    for i in order.tolist():
        if slots[i].item() not in seen:
            seen.add(slots[i].item())
            kept.append(i)
    which = torch.tensor(sorted(kept), dtype=torch.long, device=boxes.device)
    return slots[which], which, targets[which]


def decode_boxes(offsets: torch.Tensor, anchors: torch.Tensor, stride: int) -> torch.Tensor:
    """``offsets`` ``(..., A, 4, H, W)`` (t_x, t_y, t_w, t_h) -> boxes ``(..., A, H, W, 4)``
    (x0, y0, x1, y1 in input pixels)."""
    height, width = offsets.shape[-2:]
    ys = torch.arange(height, device=offsets.device, dtype=offsets.dtype)[:, None]
    xs = torch.arange(width, device=offsets.device, dtype=offsets.dtype)[None, :]
    cx = (xs + torch.sigmoid(offsets[..., 0, :, :])) * stride
    cy = (ys + torch.sigmoid(offsets[..., 1, :, :])) * stride
    shape = [1] * (offsets.dim() - 4) + [len(anchors), 1, 1]
    w = anchors[:, 0].view(shape) * torch.exp(offsets[..., 2, :, :].clamp(max=MAX_LOG_SIZE))
    h = anchors[:, 1].view(shape) * torch.exp(offsets[..., 3, :, :].clamp(max=MAX_LOG_SIZE))
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def backbone_level(backbone, in_feature: str, backbone_name: str) -> ShapeSpec:
    """The shape of the backbone's output ``in_feature``; an error naming the key and the levels
    the backbone has when it has no such output."""
    shapes = backbone.output_shape()
    if in_feature not in shapes:
        raise ValueError(f"MODEL.FSRW.IN_FEATURE={in_feature!r}: the backbone {backbone_name} "
                         f"gives {sorted(shapes)}")
    return shapes[in_feature]


class ReweightedYOLOHead(nn.Module):
    """Meta features, Eq. 6.1 and the prediction module P (module docstring); holds the class
    vectors used at inference (``class_vectors``) and reads ``episode_vectors`` in training."""

    @configurable
    def __init__(self, *, in_channels: int, conv_dims: Sequence[int], num_anchors: int,
                 num_classes: int, reweighted_channels: int, class_scorer: str = "shared"):
        """
        Args:
            in_channels: channels of the backbone level.
            conv_dims: output channels of the 3x3 convolutions (with GroupNorm and leaky ReLU)
                giving the meta features; their last (or ``in_channels``) is m.
            num_anchors: A.
            num_classes: N at inference (the stored class vectors).
            reweighted_channels: r, how many of the m channels a class vector scales (-1: all).
            class_scorer: "shared" (P gives every class's score with the same weights: a class
                is told apart by its vector alone) or "per_class" (the class score of class i
                from weights of its own, ``class_score`` ``(N A, m)``, on class i's reweighted
                features; P gives the rest).
        """
        super().__init__()
        check_class_scorer(class_scorer)
        layers, channels = [], in_channels
        for dim in conv_dims:
            layers += [nn.Conv2d(channels, dim, 3, padding=1, bias=False),
                       nn.GroupNorm(math.gcd(32, dim), dim), nn.LeakyReLU(0.1, inplace=True)]
            channels = dim
        self.meta_features = nn.Sequential(*layers)
        if reweighted_channels == -1:
            reweighted_channels = channels
        if not 0 < reweighted_channels <= channels:
            raise ValueError(f"MODEL.FSRW.REWEIGHTED_CHANNELS={reweighted_channels}: expected "
                             f"1..{channels} (the meta features' channels) or -1 for all")
        self.reweighted_channels, self.num_anchors = reweighted_channels, num_anchors
        self.class_scorer = class_scorer
        shared_outputs = PREDICTIONS_PER_ANCHOR - (class_scorer == "per_class")
        self.predictor = nn.Conv2d(channels, num_anchors * shared_outputs, 1)
        # He init for the meta features' convolutions, as Darknet's; the prediction module as
        # Detectron2's dense heads (N(0, 0.01), bias 0): He-initialised, its box and objectness
        # outputs start large, and their gradients wiped the class information out of the
        # backbone's features in the first few hundred iterations (projects/FSRW/README.md)
        for layer in self.meta_features:
            if isinstance(layer, nn.Conv2d):
                c2_msra_fill(layer)
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.constant_(self.predictor.bias, 0)
        if class_scorer == "per_class":  # rows of class i: i A .. (i + 1) A - 1
            self.class_score = nn.Linear(channels, num_classes * num_anchors)
            nn.init.normal_(self.class_score.weight, std=0.01)
            nn.init.constant_(self.class_score.bias, 0)
        self.class_vectors = ClassVectors(num_classes, reweighted_channels)
        self.episode_vectors = self.episode_classes = None

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        fsrw = cfg.MODEL.FSRW
        return {"in_channels": input_shape.channels, "conv_dims": tuple(fsrw.META_CONV_DIMS),
                "num_anchors": len(fsrw.ANCHORS), "num_classes": fsrw.NUM_CLASSES,
                "reweighted_channels": fsrw.REWEIGHTED_CHANNELS,
                "class_scorer": fsrw.CLASS_SCORER}

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        """``[(B, C, H, W)]`` -> predictions ``(B, N, A, 6, H, W)``."""
        (feature,) = features
        meta = self.meta_features(feature)
        vectors = (self.episode_vectors if self.episode_vectors is not None
                   else self.class_vectors.get())
        reweighted = reweight(meta, vectors)  # (B, N, m, H, W)
        batch, classes, channels, height, width = reweighted.shape
        out = self.predictor(reweighted.reshape(batch * classes, channels, height, width))
        out = out.view(batch, classes, self.num_anchors, -1, height, width)
        if self.class_scorer == "shared":
            return out
        rows = (self.episode_classes if self.episode_classes is not None
                else torch.arange(classes, device=out.device))
        weight = self.class_score.weight.view(-1, self.num_anchors, channels)[rows]  # (N, A, m)
        bias = self.class_score.bias.view(-1, self.num_anchors)[rows]
        scores = torch.einsum("bnmhw,nam->bnahw", reweighted, weight) + bias[None, :, :, None,
                                                                             None]
        return torch.cat([out, scores[:, :, :, None]], dim=3)


@META_ARCH_REGISTRY.register()
class ReweightingYOLO(SupportReweighting, DenseDetector):
    """Detectron2's ``DenseDetector`` with the :class:`ReweightedYOLOHead` on one backbone level
    and the support branch of :class:`~.meta_arch.SupportReweighting` (module docstring)."""

    @configurable
    def __init__(self, *, backbone, head: ReweightedYOLOHead, in_feature: str, anchors,
                 loss: str, ignore_iou: float, negatives_per_positive: float,
                 score_thresh: float, nms_thresh: float, topk_candidates: int,
                 max_detections_per_image: int, support_branch: dict, pixel_mean, pixel_std):
        """
        Args:
            backbone, pixel_mean, pixel_std: as ``DenseDetector``'s.
            head: the dense head.
            in_feature: the backbone level it reads (one of ``backbone.output_shape()``).
            anchors: ``(A, 2)`` anchor widths and heights in input pixels.
            loss: the class loss, one of :data:`~.losses.CLASS_LOSSES`.
            ignore_iou: a negative whose decoded box overlaps a box of its class by more is
                not a negative.
            negatives_per_positive: negatives sampled into the objectness loss per positive.
            score_thresh, nms_thresh, topk_candidates, max_detections_per_image: inference.
            support_branch: :meth:`SupportReweighting.init_support_branch`'s arguments.
        """
        level = backbone_level(backbone, in_feature, type(backbone).__name__)
        if loss not in CLASS_LOSSES:
            raise ValueError(f"MODEL.FSRW.LOSS={loss!r}: expected one of {CLASS_LOSSES}")
        anchors = torch.as_tensor(anchors, dtype=torch.float32)
        if anchors.dim() != 2 or anchors.shape[1] != 2 or len(anchors) == 0 or (
                anchors <= 0).any():
            raise ValueError(f"MODEL.FSRW.ANCHORS={anchors.tolist()}: expected a non-empty list "
                             f"of [width, height] pairs > 0 in input pixels")
        super().__init__(backbone, head, [in_feature], pixel_mean=pixel_mean, pixel_std=pixel_std)
        self.init_support_branch(**support_branch)
        self.stride = level.stride
        self.register_buffer("anchors", anchors, persistent=False)
        self.loss, self.ignore_iou = loss, ignore_iou
        self.negatives_per_positive = negatives_per_positive
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.topk_candidates = topk_candidates
        self.max_detections_per_image = max_detections_per_image

    @classmethod
    def from_config(cls, cfg):
        fsrw = cfg.MODEL.FSRW
        backbone = build_backbone(cfg)
        head = ReweightedYOLOHead(cfg, backbone_level(backbone, fsrw.IN_FEATURE,
                                                      cfg.MODEL.BACKBONE.NAME))
        return {"backbone": backbone, "head": head, "in_feature": fsrw.IN_FEATURE,
                "anchors": fsrw.ANCHORS, "loss": fsrw.LOSS, "ignore_iou": fsrw.IGNORE_IOU,
                "negatives_per_positive": fsrw.NEGATIVES_PER_POSITIVE,
                "score_thresh": fsrw.SCORE_THRESH_TEST, "nms_thresh": fsrw.NMS_THRESH_TEST,
                "topk_candidates": fsrw.TOPK_CANDIDATES_TEST,
                "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
                "support_branch": cls.support_branch_from_config(cfg, head.reweighted_channels,
                                                                 backbone),
                "pixel_mean": cfg.MODEL.PIXEL_MEAN, "pixel_std": cfg.MODEL.PIXEL_STD}

    @property
    def reweighted_predictor(self) -> nn.Module:
        return self.head

    def forward(self, batched_inputs):
        if not self.training:
            return super().forward(batched_inputs)
        vectors, self._episode_classes = self.draw_episode(one_class=self.loss == "single_binary")
        with self.episode_vectors(vectors, self._episode_classes):
            return super().forward(batched_inputs)

    def forward_training(self, images, features, predictions, gt_instances):
        """The losses of the module docstring for predictions ``(B, N, A, 6, H, W)`` of the
        episode's classes ``self._episode_classes`` ``(N,)``."""
        classes = self._episode_classes
        batch, num, anchors, _, height, width = predictions.shape
        objectness = predictions[:, :, :, 0].flatten(2)  # (B, N, A*H*W)
        boxes = decode_boxes(predictions[:, :, :, 1:5].detach(), self.anchors, self.stride)
        boxes = boxes.reshape(batch, num, -1, 4)
        positive = torch.zeros_like(objectness, dtype=torch.bool)
        ignored = torch.zeros_like(positive)
        box_pred, box_target, class_logits, class_target = [], [], [], []
        for b, instances in enumerate(gt_instances):
            gt = instances.gt_boxes.tensor
            slots, which, targets = assign_targets(gt, self.anchors, self.stride, (height, width))
            gt_classes = instances.gt_classes[which]
            # the column of each positive's class among the episode's, -1 if absent
            column = torch.where(gt_classes[:, None] == classes[None, :],
                                 torch.arange(num, device=classes.device)[None, :], -1).amax(1)
            class_logits.append(predictions[b, :, :, 5].flatten(1)[:, slots].T)
            class_target.append(column)
            present = column >= 0
            positive[b, column[present], slots[present]] = True
            offsets = predictions[b, :, :, 1:5].permute(0, 1, 3, 4, 2).reshape(num, -1, 4)
            box_pred.append(offsets[column[present], slots[present]])
            box_target.append(targets[present])
            if len(gt):
                same_class = instances.gt_classes[None, :] == classes[:, None]  # (N, G)
                iou = pairwise_iou(Boxes(boxes[b].reshape(-1, 4)), Boxes(gt)).view(num, -1,
                                                                                   len(gt))
                ignored[b] = (iou * same_class[:, None, :]).amax(dim=2) > self.ignore_iou
        negatives = (~positive & ~ignored).flatten().nonzero()[:, 0]
        num_positive = int(positive.sum())
        wanted = int(self.negatives_per_positive * max(num_positive, 1))
        sampled = negatives[torch.randperm(len(negatives), device=negatives.device)[:wanted]]
        counted = torch.cat([positive.flatten().nonzero()[:, 0], sampled])
        loss_obj = F.binary_cross_entropy_with_logits(
            objectness.flatten()[counted], positive.flatten()[counted].to(objectness.dtype),
            reduction="sum") / max(len(counted), 1)
        box_pred, box_target = torch.cat(box_pred), torch.cat(box_target)
        box_pred = torch.cat([torch.sigmoid(box_pred[:, :2]), box_pred[:, 2:]], dim=1)
        loss_box = ((box_pred - box_target) ** 2).sum() / max(len(box_pred), 1)
        class_logits, class_target = torch.cat(class_logits), torch.cat(class_target)
        if self.loss == "single_binary":
            # one column, the episode's class: its score against "the object is of it"
            loss_cls = class_loss(class_logits, class_target, self.loss,
                                  support_classes=torch.zeros_like(class_target))
        else:
            loss_cls = class_loss(class_logits, class_target, self.loss)
        return {"loss_obj": loss_obj, "loss_box": loss_box, "loss_cls": loss_cls}

    def class_probabilities(self, class_scores: torch.Tensor) -> torch.Tensor:
        """Class scores ``(B, N, ...)`` -> probabilities: softmax across the N classes (Eq. 6.3)
        with the softmax loss, else each class's sigmoid."""
        if self.loss == "softmax":
            return torch.softmax(class_scores, dim=1)
        return torch.sigmoid(class_scores)

    def forward_inference(self, images, features, predictions) -> List[Instances]:
        """Per class: ``sigmoid(o_i) * p_i`` over the A*H*W slots, the ``topk_candidates``
        best above ``score_thresh``, per-class NMS, the ``max_detections_per_image`` best."""
        batch, num = predictions.shape[:2]
        scores = torch.sigmoid(predictions[:, :, :, 0]) * self.class_probabilities(
            predictions[:, :, :, 5])
        boxes = decode_boxes(predictions[:, :, :, 1:5], self.anchors, self.stride)
        results = []
        for b, image_size in enumerate(images.image_sizes):
            flat = scores[b].flatten()
            keep = (flat > self.score_thresh).nonzero()[:, 0]
            keep = keep[flat[keep].topk(min(self.topk_candidates, len(keep))).indices]
            per_class = flat.numel() // num
            image_boxes = Boxes(boxes[b].reshape(-1, 4)[keep])
            image_boxes.clip(image_size)
            classes = torch.div(keep, per_class, rounding_mode="floor")
            kept = batched_nms(image_boxes.tensor, flat[keep], classes, self.nms_thresh)
            kept = kept[: self.max_detections_per_image]
            result = Instances(image_size)
            result.pred_boxes = image_boxes[kept]
            result.scores = flat[keep][kept]
            result.pred_classes = classes[kept]
            results.append(result)
        return results


declare_meta_architecture("ReweightingYOLO", MetaArchitectureNeeds(
    "MODEL.FSRW.NUM_CLASSES", predictor_prefix=ONE_STAGE_SCORE + ".",
    predictor_must_fit=per_class_predictor_must_fit, predictor_fix=PHASE_2_FIX,
    check_before_test=check_class_vectors))
