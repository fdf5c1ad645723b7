"""TFA: few-shot object detection by two-stage fine-tuning (thesis ch. 7).

Base training on the base classes, then fine-tuning of the last layer (box classifier and
regressor) on a balanced K-shot set of base and novel classes with everything else frozen;
checkpoint surgery turns the base model's predictor into one for all classes.
"""
from .cosine import CosineSimOutputLayers  # registers in BOX_PREDICTOR_REGISTRY
from .roi_heads import TFAROIHeads  # registers in ROI_HEADS_REGISTRY

__all__ = ["CosineSimOutputLayers", "TFAROIHeads"]
