"""FSRW-style few-shot detection by feature reweighting (thesis ch. 6): class vectors computed
from support examples reweight the query's meta features per class (Eq. 6.1).

Importing this package registers ``ReweightingYOLO`` (the thesis' one-stage detector:
:mod:`.one_stage`) and ``ReweightingRCNN`` (:mod:`.meta_arch`) in ``META_ARCH_REGISTRY``, both
declared to the trainer, ``ReweightingROIHeads`` in ``ROI_HEADS_REGISTRY`` (the two-stage, Meta
R-CNN style detector: :mod:`.two_stage`), ``LightReweighter`` and ``BackboneReweighter`` in
:data:`FSRW_REWEIGHTER_REGISTRY` (ours: Detectron2 has no registry for reweighting modules) and
``add_fsrw_config`` (the ``MODEL.FSRW`` keys, :mod:`.config`). Its pieces: Eq. 6.1 for every
class at once (:func:`reweight`), the class losses of Table 6.5 (:func:`class_loss`), the
support pool with seeded episodes and the support tensors (:mod:`.support`), Fig. 6.4's views of
the class vectors (:mod:`.analysis`).
Both keep the mean class vectors for inference (:mod:`.class_vectors`). It also declares the
sweep methods ``fsrw`` and ``meta_rcnn``, their ablations and their bases (phase 1) to
``tools/run_experiments.py`` (:mod:`.sweep`); class vectors are recomputed from other supports by
``tools/fsrw_class_vectors.py`` (:mod:`.pipeline`). Not yet: the benchmark (issue 23).
"""
from . import config, sweep  # noqa: F401  (register add_fsrw_config, the sweep's method)
from .class_vectors import ClassVectors, ClassVectorsError
from .losses import CLASS_LOSSES, class_loss
from .meta_arch import ReweightingRCNN, SupportReweighting, SupportSource
from .one_stage import ReweightedYOLOHead, ReweightingYOLO, assign_targets
from .reweighting import (
    FSRW_REWEIGHTER_REGISTRY,
    BackboneReweighter,
    LightReweighter,
    build_reweighter,
    reweight,
    support_channels,
)
from .support import SupportError, SupportPool, support_input
from .two_stage import ReweightedOutputLayers, ReweightingROIHeads

__all__ = [
    "BackboneReweighter", "CLASS_LOSSES", "FSRW_REWEIGHTER_REGISTRY", "ClassVectors",
    "ClassVectorsError", "LightReweighter", "ReweightedOutputLayers", "ReweightedYOLOHead",
    "ReweightingRCNN", "ReweightingROIHeads", "ReweightingYOLO", "SupportError", "SupportPool",
    "SupportReweighting", "SupportSource", "assign_targets", "build_reweighter", "class_loss",
    "reweight", "support_channels", "support_input",
]
