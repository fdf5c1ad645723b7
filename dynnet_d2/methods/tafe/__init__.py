"""TAFE-Net, task-aware feature embeddings (thesis ch. 5): a meta learner turns a task
description into the weights of factorised dynamic layers on image features; a shared binary
classifier scores each image's compatibility with each task.

Importing this package registers ``TAFEHead`` in ``CLASSIFIER_HEAD_REGISTRY`` (a head of
``ImageClassifier``: :mod:`.head`) and ``add_tafe_config`` (the ``MODEL.TAFE`` keys,
:mod:`.config`). Its pieces: Eq. 5.5 for all tasks at once and the meta learner (:mod:`.layers`),
the embedding loss of Eq. 5.7 (:mod:`.losses`). Not yet: the task datasets (compositional,
generalized zero-shot, few-shot), cached-feature training, baselines, benchmark (issue 25).
"""
from . import config  # noqa: F401  (registers add_tafe_config)
from .head import TAFEHead, read_descriptions
from .layers import FactorizedLinear, TaskAwareMetaLearner, factorized_linear
from .losses import embedding_loss

__all__ = ["FactorizedLinear", "TAFEHead", "TaskAwareMetaLearner", "embedding_loss",
           "factorized_linear", "read_descriptions"]
