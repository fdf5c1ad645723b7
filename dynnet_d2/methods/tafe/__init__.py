"""TAFE-Net, task-aware feature embeddings (thesis ch. 5): a meta learner turns a task
description into the weights of factorised dynamic layers on image features; a shared binary
classifier scores each image's compatibility with each task.

Importing this package registers ``TAFEHead``, the bilinear compatibility baseline
``AttributeBilinearHead`` and the compositional task's ``VisualProductHead`` in
``CLASSIFIER_HEAD_REGISTRY`` (heads of ``ImageClassifier``:
:mod:`.head`) and ``add_tafe_config`` (the ``MODEL.TAFE`` keys,
:mod:`.config`). Its pieces: Eq. 5.5 for all tasks at once and the meta learner (:mod:`.layers`),
the embedding loss of Eq. 5.7 (:mod:`.losses`). The generalized zero-shot views of the shapes
(``shapes_zsl{f}_{train,val,test}``), the compositional ones (``shapes_pairs_{color,texture}_*``),
their metrics and training on cached features (:mod:`dynnet_d2.engine.feature_cache`) are
shared data, evaluation and engine. Few-shot classification with example images as task
descriptions and its baselines on cached features: :mod:`.fewshot`; the benchmark:
:mod:`.benchmark`.
"""
from . import config  # noqa: F401  (registers add_tafe_config)
from .head import AttributeBilinearHead, TAFEHead, VisualProductHead, read_descriptions
from .layers import FactorizedLinear, TaskAwareMetaLearner, factorized_linear
from .losses import embedding_loss

__all__ = ["AttributeBilinearHead", "FactorizedLinear", "TAFEHead", "TaskAwareMetaLearner",
           "VisualProductHead",
           "embedding_loss", "factorized_linear", "read_descriptions"]
