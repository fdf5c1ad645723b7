"""Box-supervised saliency by multiple instance learning (thesis Sec. 8.3, Eq. 8.1-8.3, Fig. 8.4).

Each proposal is a bag of the pixels of its RoI. For class c it is a positive bag when its IoU
with some ground-truth box of class c exceeds the threshold t, else a negative bag (Eq. 8.2): a
positive bag holds at least one object pixel, a negative one none (Eq. 8.1).

The "activating" head is a trunk of conv-ReLU layers, RoI features (R, D, S, S) -> (R, T, S, S),
then a 1x1 convolution to one map per class, saliency logits (R, K, S, S). Eq. 8.3 asks the 2-D
aggregation (average, or max) of the map of class c to be high on the positive bags of c and
low on its negative bags; we take it in its log-likelihood form, the binary cross-entropy of
``sigmoid(aggregate(logits))`` against the bag label, which has the same optimum and stays
bounded. The map kept for the propagation is the one of the proposal's class: the matched
ground-truth class in training, the predicted class at test time; :meth:`SaliencyHead.class_maps`
computes only that map (one row of the 1x1 convolution per RoI), not all K.
"""
import torch
from detectron2.structures import Boxes, pairwise_iou
from torch import nn
from torch.nn import functional as F

from .propagation import conv_relu_blocks

AGGREGATIONS = ("avg", "max")


def mil_bag_labels(proposals: Boxes, gt_boxes: Boxes, gt_classes: torch.Tensor,
                   num_classes: int, iou_threshold: float) -> torch.Tensor:
    """Bag labels (R, K) of the R proposals of one image: 1 where the proposal's IoU with a
    ground-truth box of that class is above ``iou_threshold`` (Eq. 8.2), else 0."""
    labels = torch.zeros((len(proposals), num_classes), device=proposals.tensor.device)
    if len(gt_boxes) == 0 or len(proposals) == 0:
        return labels
    above = pairwise_iou(proposals, gt_boxes) > iou_threshold  # (R, G)
    classes = F.one_hot(gt_classes.long(), num_classes).float()  # (G, K)
    return (above.float() @ classes).clamp(max=1.0)


def aggregate(logits: torch.Tensor, how: str) -> torch.Tensor:
    """2-D aggregation (R, K) of saliency logits (R, K, S, S): mean or max over locations."""
    if how == "avg":
        return logits.mean(dim=(2, 3))
    if how == "max":
        return logits.amax(dim=(2, 3))
    raise ValueError(f"MODEL.SHAPEPROP.MIL_AGGREGATION={how!r}; expected one of {AGGREGATIONS}")


def mil_loss(logits: torch.Tensor, bag_labels: torch.Tensor, how: str = "avg") -> torch.Tensor:
    """Eq. 8.3 as binary cross-entropy of the aggregated maps against the bag labels, averaged
    over proposals and classes; 0 (with a gradient path) when there is no proposal."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(aggregate(logits, how), bag_labels)


class SaliencyHead(nn.Module):
    """RoI features (R, D, S, S) -> trunk features (R, T, S, S) -> saliency logits (R, K, S, S),
    one map per class (T = ``conv_dim``, or D without conv layers)."""

    def __init__(self, *, in_channels: int, num_classes: int, num_convs: int = 2,
                 conv_dim: int = 64):
        super().__init__()
        self.convs = conv_relu_blocks(in_channels, conv_dim, num_convs)
        self.out_channels = conv_dim if num_convs else in_channels
        self.predictor = nn.Conv2d(self.out_channels, num_classes, 1)

    def trunk(self, features: torch.Tensor) -> torch.Tensor:
        """The conv-ReLU layers: (R, D, S, S) -> (R, T, S, S)."""
        return self.convs(features)

    def maps(self, trunk: torch.Tensor) -> torch.Tensor:
        """Every class's saliency logits (R, K, S, S) from the trunk's features."""
        return self.predictor(trunk)

    def class_maps(self, trunk: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The saliency logits (R, 1, S, S) of each RoI's class only: ``select_class_maps(
        self.maps(trunk), classes)`` without computing the other K - 1 maps."""
        weight = self.predictor.weight[classes.long(), :, 0, 0]  # (R, T)
        maps = torch.einsum("rthw,rt->rhw", trunk, weight)
        return (maps + self.predictor.bias[classes.long()].view(-1, 1, 1)).unsqueeze(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.maps(self.trunk(features))


def select_class_maps(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The map of each RoI's class: (R, K, S, S), (R,) -> (R, 1, S, S)."""
    index = classes.long().view(-1, 1, 1, 1).expand(-1, 1, *logits.shape[2:])
    return logits.gather(1, index)
