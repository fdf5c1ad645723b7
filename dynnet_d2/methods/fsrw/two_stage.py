"""The two-stage reweighting detector (Meta R-CNN style; thesis ch. 6 with Eq. 6.1 applied to
RoI features): Faster R-CNN whose box predictor scores every RoI once per class, on the RoI's
box-head feature reweighted by that class's vector.

For R RoIs with box-head features ``x`` ``(R, D)`` and class vectors ``w`` ``(N, r)``
(:func:`~.reweighting.reweight`: ``F`` ``(R, N, D)``), :class:`ReweightedOutputLayers` gives

    score of class i      c_i = <a, F_i> + b          (R, N), one shared scorer for all classes
    score of background   c_bg = <a_bg, x> + b_bg     (R, 1), on the feature before reweighting
    box deltas of class i t_i = T F_i + t_0           (R, N, 4), one shared regressor

so the scores ``(R, N + 1)`` are calibrated by one softmax across the classes and the background
(the thesis' Eq. 6.3, with Fast R-CNN's background), and the deltas ``(R, 4N)`` are
class-specific: Detectron2's ``FastRCNNOutputLayers`` losses and inference apply unchanged.

The vectors: in training, the episode's (set by :class:`~.meta_arch.ReweightingRCNN` for one
forward); at inference, ``class_vectors`` ``(N, r)``, the mean over each class's support
examples, stored in the checkpoint with a fingerprint of the class names they belong to.
"""
import hashlib
from typing import Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from torch import nn

from .reweighting import reweight

NO_VECTORS = ("{where}: this model has no stored class vectors; compute them from support "
              "examples with tools/fsrw_class_vectors.py (training stores them in every "
              "checkpoint it writes)")


def class_key(class_names: Sequence[str]) -> int:
    """A positive int64 fingerprint of the class names, in order."""
    digest = hashlib.sha256("\n".join(class_names).encode()).digest()
    return int.from_bytes(digest[:7], "big") or 1


class ClassVectorsError(RuntimeError):
    """Inference without usable stored class vectors."""


class ReweightedOutputLayers(FastRCNNOutputLayers):
    """``FastRCNNOutputLayers`` scoring each class on its reweighted RoI feature (module
    docstring)."""

    @configurable
    def __init__(self, input_shape, *, reweighted_channels: int, **kwargs):
        """``reweighted_channels``: r, how many of the D feature channels a class vector scales
        (D: all; Table 6.4's "half": D // 2); other arguments as ``FastRCNNOutputLayers``."""
        super().__init__(input_shape, **kwargs)
        if self.bbox_pred.out_features == 4 and self.num_classes > 1:
            raise ValueError("MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG=True: the reweighting "
                             "predictor regresses each class from its own feature")
        channels = self.cls_score.in_features
        if not 0 < reweighted_channels <= channels:
            raise ValueError(f"MODEL.FSRW.REWEIGHTED_CHANNELS={reweighted_channels}: expected "
                             f"1..{channels} (the box head's output channels) or -1 for all")
        self.reweighted_channels = reweighted_channels
        self.cls_score = nn.Linear(channels, 1)
        self.background_score = nn.Linear(channels, 1)
        self.bbox_pred = nn.Linear(channels, len(self.box2box_transform.weights))
        for layer, std in ((self.cls_score, 0.01), (self.background_score, 0.01),
                           (self.bbox_pred, 0.001)):
            nn.init.normal_(layer.weight, std=std)
            nn.init.constant_(layer.bias, 0)
        # buffers, so checkpoints hold them; phase 2 starting from phase 1's checkpoint (fewer
        # classes) does not load them (another shape) and computes its own
        self.register_buffer("class_vectors", torch.zeros(self.num_classes, reweighted_channels))
        # class_key(names of their classes); 0: not computed
        self.register_buffer("class_vectors_key", torch.zeros(1, dtype=torch.int64))
        self.episode_vectors: Optional[torch.Tensor] = None

    @classmethod
    def from_config(cls, cfg, input_shape):
        channels = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
        reweighted = cfg.MODEL.FSRW.REWEIGHTED_CHANNELS
        return {**super().from_config(cfg, input_shape),
                "reweighted_channels": channels if reweighted == -1 else reweighted}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the vectors and their key load together: when the vectors were left out (another
        # class count, e.g. phase 2 from phase 1's checkpoint), none are stored
        if prefix + "class_vectors" not in state_dict:
            state_dict.pop(prefix + "class_vectors_key", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def store_class_vectors(self, vectors: torch.Tensor, class_names: Sequence[str]) -> None:
        """Keep ``vectors`` ``(N, r)`` of ``class_names`` for inference."""
        if vectors.shape != self.class_vectors.shape or len(class_names) != self.num_classes:
            raise ValueError(f"class vectors {tuple(vectors.shape)} of {len(class_names)} "
                             f"classes; expected {tuple(self.class_vectors.shape)}")
        self.class_vectors.copy_(vectors)
        self.class_vectors_key.fill_(class_key(class_names))

    def check_class_names(self, class_names: Sequence[str], where: str) -> None:
        """``ClassVectorsError`` unless the stored vectors are those of ``class_names``."""
        stored = int(self.class_vectors_key)
        if stored == 0:
            raise ClassVectorsError(NO_VECTORS.format(where=where))
        if stored != class_key(class_names):
            raise ClassVectorsError(f"{where}: the stored class vectors are of other classes "
                                    f"than {list(class_names)}")

    def forward(self, x: torch.Tensor):
        """``x`` ``(R, D)`` (or ``(R, C, H, W)``) -> scores ``(R, N + 1)``, deltas ``(R, 4N)``."""
        x = torch.flatten(x, start_dim=1)
        if self.episode_vectors is not None:
            vectors = self.episode_vectors
        elif int(self.class_vectors_key) == 0:
            raise ClassVectorsError(NO_VECTORS.format(where="inference"))
        else:
            vectors = self.class_vectors
        features = reweight(x, vectors)  # (R, N, D)
        scores = torch.cat([self.cls_score(features)[..., 0], self.background_score(x)], dim=1)
        return scores, self.bbox_pred(features).flatten(1)


@ROI_HEADS_REGISTRY.register()
class ReweightingROIHeads(StandardROIHeads):
    """``StandardROIHeads`` with :class:`ReweightedOutputLayers` as the box predictor."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        parts = super()._init_box_head(cfg, input_shape)
        parts["box_predictor"] = ReweightedOutputLayers(cfg, parts["box_head"].output_shape)
        return parts
