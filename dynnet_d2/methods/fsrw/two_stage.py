"""The two-stage reweighting detector (Meta R-CNN style; thesis ch. 6 with Eq. 6.1 applied to
RoI features): Faster R-CNN whose box predictor scores every RoI once per class, on the RoI's
box-head feature reweighted by that class's vector.

For R RoIs with box-head features ``x`` ``(R, D)`` and class vectors ``w`` ``(N, r)``
(:func:`~.reweighting.reweight`: ``F`` ``(R, N, D)``), :class:`ReweightedOutputLayers` gives

    score of class i      c_i = <a, F_i> + b          (R, N), one shared scorer for all classes
    score of background   c_bg = <a_bg, x> + b_bg     (R, 1), on the feature before reweighting
    box deltas of class i t_i = T F_i + t_0           (R, N, 4), one shared regressor

(``MODEL.FSRW.CLASS_SCORER "shared"``, FSRW's form: a class is told apart by its vector alone),
or with ``"per_class"`` Meta R-CNN's: its (N + 1)-way predictor run on every class's reweighted
feature and class i's output kept, ``c_i = <a_i, F_i> + b_i`` and ``t_i = T_i F_i + t_0i``, so
the predictor has a row per class as Fast R-CNN's does, modulated by the vectors (its rows are
shaped by the class count: phase 2 needs a checkpoint whose predictor fits, as TFA's does).

so the scores ``(R, N + 1)`` are calibrated by one softmax across the classes and the background
(the thesis' Eq. 6.3, with Fast R-CNN's background), and the deltas ``(R, 4N)`` are
class-specific: Detectron2's ``FastRCNNOutputLayers`` losses and inference apply unchanged.

The vectors: in training, the episode's (set by :class:`~.meta_arch.ReweightingRCNN` for one
forward); at inference, ``class_vectors`` ``(N, r)``, the mean over each class's support
examples (:class:`~.class_vectors.ClassVectors`, stored in the checkpoint with the class names
they belong to).
"""
from typing import Optional

import torch
from detectron2.config import configurable
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from torch import nn

from .class_vectors import ClassVectors
from .reweighting import check_class_scorer, reweight


class ReweightedOutputLayers(FastRCNNOutputLayers):
    """``FastRCNNOutputLayers`` scoring each class on its reweighted RoI feature (module
    docstring)."""

    @configurable
    def __init__(self, input_shape, *, reweighted_channels: int, class_scorer: str = "shared",
                 **kwargs):
        """``reweighted_channels``: r, how many of the D feature channels a class vector scales
        (D: all; Table 6.4's "half": D // 2); ``class_scorer``: "shared" or "per_class" (module
        docstring); other arguments as ``FastRCNNOutputLayers``."""
        super().__init__(input_shape, **kwargs)
        check_class_scorer(class_scorer)
        if self.bbox_pred.out_features == 4 and self.num_classes > 1:
            raise ValueError("MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG=True: the reweighting "
                             "predictor regresses each class from its own feature")
        channels = self.cls_score.in_features
        if not 0 < reweighted_channels <= channels:
            raise ValueError(f"MODEL.FSRW.REWEIGHTED_CHANNELS={reweighted_channels}: expected "
                             f"1..{channels} (the box head's output channels) or -1 for all")
        self.reweighted_channels, self.class_scorer = reweighted_channels, class_scorer
        rows = self.num_classes if class_scorer == "per_class" else 1
        self.cls_score = nn.Linear(channels, rows)
        self.background_score = nn.Linear(channels, 1)
        self.bbox_pred = nn.Linear(channels, rows * len(self.box2box_transform.weights))
        for layer, std in ((self.cls_score, 0.01), (self.background_score, 0.01),
                           (self.bbox_pred, 0.001)):
            nn.init.normal_(layer.weight, std=std)
            nn.init.constant_(layer.bias, 0)
        # phase 2 starting from phase 1's checkpoint (fewer classes) does not load them (another
        # shape) and computes its own
        self.class_vectors = ClassVectors(self.num_classes, reweighted_channels)
        self.episode_vectors: Optional[torch.Tensor] = None

    @classmethod
    def from_config(cls, cfg, input_shape):
        channels = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
        reweighted = cfg.MODEL.FSRW.REWEIGHTED_CHANNELS
        return {**super().from_config(cfg, input_shape),
                "reweighted_channels": channels if reweighted == -1 else reweighted,
                "class_scorer": cfg.MODEL.FSRW.CLASS_SCORER}

    def forward(self, x: torch.Tensor):
        """``x`` ``(R, D)`` (or ``(R, C, H, W)``) -> scores ``(R, N + 1)``, deltas ``(R, 4N)``."""
        x = torch.flatten(x, start_dim=1)
        vectors = (self.episode_vectors if self.episode_vectors is not None
                   else self.class_vectors.get())
        features = reweight(x, vectors)  # (R, N, D)
        if self.class_scorer == "shared":
            scores, deltas = self.cls_score(features)[..., 0], self.bbox_pred(features)
        else:  # class i's row of the predictor on class i's feature, for every class at once
            n = features.shape[1]
            scores = torch.einsum("rnd,nd->rn", features, self.cls_score.weight) \
                + self.cls_score.bias
            deltas = torch.einsum("rnd,nkd->rnk", features,
                                  self.bbox_pred.weight.view(n, -1, features.shape[2])) \
                + self.bbox_pred.bias.view(n, -1)
        scores = torch.cat([scores, self.background_score(x)], dim=1)
        return scores, deltas.flatten(1)


@ROI_HEADS_REGISTRY.register()
class ReweightingROIHeads(StandardROIHeads):
    """``StandardROIHeads`` with :class:`ReweightedOutputLayers` as the box predictor."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        parts = super()._init_box_head(cfg, input_shape)
        parts["box_predictor"] = ReweightedOutputLayers(cfg, parts["box_head"].output_shape)
        return parts
