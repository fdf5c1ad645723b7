"""TFA's cosine-similarity box classifier (thesis §7.2, Eq. 7.2).

For proposal features ``x`` of shape (R, D) and class weights ``w_j`` (rows of ``cls_score.weight``,
shape (K + 1, D), background last), the scores are

    s_ij = alpha * <x_i, w_j> / (||x_i|| * ||w_j||),     shape (R, K + 1),

with ``alpha`` fixed (``MODEL.ROI_HEADS.COSINE_SCALE``, 20 in the thesis) or learnable (-1: a
parameter ``scale`` of shape (1,) initialised to 20). No bias. The box regressor is Detectron2's
(``bbox_pred``). Losses and inference are those of Detectron2's ``FastRCNNOutputLayers``.

Parameter names and shapes are fsdet's (``cls_score.weight`` without bias, ``bbox_pred.*``,
``scale``), so fsdet checkpoints load. Unlike fsdet, which rescaled ``cls_score.weight.data``
in place at every forward (the gradient then ignores the normalisation), the normalisation here
is part of the differentiable computation of Eq. 7.2.
"""
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from torch import nn

from ...modeling.roi_heads import BOX_PREDICTOR_REGISTRY

# Learnable scale's initial value (``COSINE_SCALE`` -1), as in the thesis and fsdet.
INITIAL_LEARNED_SCALE = 20.0
# Lower bound of the norms divided by (avoids 0/0 for an all-zero feature).
NORM_EPS = 1e-5


@BOX_PREDICTOR_REGISTRY.register()
class CosineSimOutputLayers(FastRCNNOutputLayers):
    """``FastRCNNOutputLayers`` whose classifier is Eq. 7.2's scaled cosine similarity."""

    @configurable
    def __init__(self, input_shape, *, cosine_scale: float, **kwargs):
        """``cosine_scale``: alpha > 0, or -1 for a learnable alpha; other arguments as
        Detectron2's ``FastRCNNOutputLayers``."""
        super().__init__(input_shape, **kwargs)
        self.cls_score = nn.Linear(self.cls_score.in_features, self.cls_score.out_features,
                                   bias=False)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        if cosine_scale == -1:
            self.scale = nn.Parameter(torch.full((1,), INITIAL_LEARNED_SCALE))
        elif cosine_scale > 0:
            self.scale = float(cosine_scale)
        else:
            raise ValueError(f"MODEL.ROI_HEADS.COSINE_SCALE={cosine_scale}: expected a positive "
                             f"scale, or -1 for a learnable one")

    @classmethod
    def from_config(cls, cfg, input_shape):
        return {**super().from_config(cfg, input_shape),
                "cosine_scale": cfg.MODEL.ROI_HEADS.COSINE_SCALE}

    def forward(self, x: torch.Tensor):
        """``x``: (R, D) or (R, C, H, W) features -> (scores (R, K + 1), deltas)."""
        x = torch.flatten(x, start_dim=1)
        cosine = F.linear(F.normalize(x, dim=1, eps=NORM_EPS),
                          F.normalize(self.cls_score.weight, dim=1, eps=NORM_EPS))
        return self.scale * cosine, self.bbox_pred(x)
