"""Class losses of the reweighting detectors (thesis ch. 6, Eq. 6.3 and Table 6.5).

``logits`` ``(A, N)``: for each of A predictions matched to an object (anchors or RoIs), the
class score c_i that the prediction module gives on the class-specific feature F_i of each of
the N classes of the episode; ``gt_classes`` ``(A,)``: the matched object's class in [0, N).

- ``softmax`` (the thesis' choice): the scores calibrated by a softmax over the N classes,
  cross-entropy of the true class (Eq. 6.3), mean over the A predictions;
- ``multi_binary``: N binary cross-entropies per prediction (c_i against 1[gt = i]), summed over
  the classes, mean over the predictions;
- ``single_binary``: the reweighting module saw the support of one class k per prediction
  (``support_classes`` ``(A,)``), one binary cross-entropy of c_k against 1[gt = k].
"""
from typing import Optional

import torch
import torch.nn.functional as F

CLASS_LOSSES = ("softmax", "multi_binary", "single_binary")


def class_loss(logits: torch.Tensor, gt_classes: torch.Tensor, kind: str,
               support_classes: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The ``kind`` class loss (see the module docstring); 0 with gradients when A = 0."""
    if kind not in CLASS_LOSSES:
        raise ValueError(f"MODEL.FSRW.LOSS={kind!r}: expected one of {CLASS_LOSSES}")
    if logits.dim() != 2 or gt_classes.shape != logits.shape[:1]:
        raise ValueError(f"class_loss: logits {tuple(logits.shape)} (A, N) and gt_classes "
                         f"{tuple(gt_classes.shape)} (A,) do not fit")
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    if kind == "softmax":
        return F.cross_entropy(logits, gt_classes)
    if kind == "multi_binary":
        targets = F.one_hot(gt_classes, logits.shape[1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(logits)
    if support_classes is None or support_classes.shape != gt_classes.shape:
        raise ValueError("class_loss: 'single_binary' needs support_classes (A,), the class whose "
                         "support each prediction saw")
    chosen = logits.gather(1, support_classes[:, None])[:, 0]
    return F.binary_cross_entropy_with_logits(chosen, (gt_classes == support_classes).to(
        logits.dtype))
