"""TFA: few-shot object detection by two-stage fine-tuning (thesis ch. 7).

Base training on the base classes, then fine-tuning of the last layer (box classifier and
regressor) on a balanced K-shot set of base and novel classes with everything else frozen;
checkpoint surgery turns the base model's predictor into one for all classes.

Importing this package registers ``CosineSimOutputLayers`` in the box-predictor registry
(:mod:`.cosine`), ``TFAROIHeads`` in Detectron2's ``ROI_HEADS_REGISTRY`` (:mod:`.roi_heads`), the
cached last-layer trainer as a trainer chooser (:mod:`.cache`), TFA's few-shot sweep methods and
base (:mod:`.sweep`), and its config keys (:mod:`.config`). Pipeline steps: :mod:`.surgery`
(tools/ckpt_surgery.py, its checks in :mod:`.surgery_cli`), :mod:`.pipeline`; the one-seed
benchmark: :mod:`.benchmark` (tools/benchmark_tfa.py).
"""
from . import cache, config, sweep  # noqa: F401  (registration side effects)
from .cosine import CosineSimOutputLayers
from .roi_heads import TFAROIHeads

__all__ = ["CosineSimOutputLayers", "TFAROIHeads"]
