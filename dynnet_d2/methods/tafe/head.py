"""``TAFEHead``: TAFE-Net's prediction network F and meta learner G as a head of
``ImageClassifier`` (thesis ch. 5, Fig. 5.2), chosen by ``MODEL.CLASSIFIER.HEAD "TAFEHead"``.

Pooled image features ``x`` ``(B, C)`` of any backbone (frozen with ``MODEL.BACKBONE.FREEZE_AT``
or cached) -> the factorised dynamic layers, their task vectors generated from the task
descriptions ``(T, D)`` (:mod:`.layers`), ReLU after each -> task-aware feature embeddings
``(B, T, d)`` -> one binary classifier shared by the tasks -> compatibility scores ``(B, T)``,
the classifier's logits (task t = class t: Eq. 5.6 is its cross-entropy). In training the
classes the training set does not cover (its metadata's ``seen_classes``, by default all) score
``-inf``, so their descriptions never reach training (zero-shot); :meth:`TAFEHead.losses` adds
beta times the embedding loss (Eq. 5.7-5.8).

The descriptions come from ``MODEL.TAFE.DESCRIPTIONS``, a JSON file ``{class name: [D floats]}``
with one entry per class of the training set's ``thing_classes`` (which order the labels).
``AttributeBilinearHead`` is the bilinear compatibility baseline on the same descriptions (on
(attribute, object) pair encodings: the label-embedding linear compatibility model of the
compositional task), ``VisualProductHead`` the compositional task's independent classifiers.
"""
import json
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.data import DatasetCatalog, MetadataCatalog
from torch import nn
from torch.nn import functional as F

from ...modeling.classifier_heads import CLASSIFIER_HEAD_REGISTRY
from .layers import FactorizedLinear, TaskAwareMetaLearner
from .losses import embedding_loss


def read_descriptions(path: str, class_names: Sequence[str]) -> torch.Tensor:
    """The descriptions ``(T, D)`` of ``class_names`` from the JSON file ``path``; errors name
    the file and the class without a description or with another length."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"MODEL.TAFE.DESCRIPTIONS={path!r}: no such file (a JSON "
                                f"object {{class name: [floats]}})")
    table = json.loads(file.read_text())
    missing = [c for c in class_names if c not in table]
    if missing:
        raise ValueError(f"{path}: no task description for class(es) {missing}")
    lengths = {c: len(table[c]) for c in class_names}
    if len(set(lengths.values())) != 1:
        expected = lengths[class_names[0]]
        odd = {c: n for c, n in lengths.items() if n != expected}
        raise ValueError(f"{path}: descriptions of length {odd}; expected {expected} (the length "
                         f"of {class_names[0]!r}'s)")
    return torch.tensor([table[c] for c in class_names], dtype=torch.float32)


def task_config(cfg) -> dict:
    """The descriptions ``(T, D)`` of the training set's classes (the JSON file
    ``MODEL.TAFE.DESCRIPTIONS``, else the training set's ``class_descriptions`` metadata) and
    which of them train (its metadata's ``seen_classes``; None: all), after checking that no
    unseen class trains (:func:`check_unseen_never_train`)."""
    name = cfg.DATASETS.TRAIN[0]
    check_unseen_never_train(name)
    metadata = MetadataCatalog.get(name)
    classes = list(metadata.thing_classes)
    seen_names = metadata.get("seen_classes", None)
    seen = None if seen_names is None else torch.tensor([c in set(seen_names) for c in classes])
    if cfg.MODEL.TAFE.DESCRIPTIONS:
        descriptions = read_descriptions(cfg.MODEL.TAFE.DESCRIPTIONS, classes)
    elif metadata.get("class_descriptions", None) is not None:
        table = metadata.class_descriptions
        descriptions = torch.tensor([table[c] for c in classes], dtype=torch.float32)
    else:
        raise ValueError(f"MODEL.TAFE.DESCRIPTIONS is empty and {name!r} has no "
                         f"class_descriptions metadata: name a JSON file {{class name: [floats]}}")
    return {"descriptions": descriptions, "seen": seen}


def check_unseen_never_train(dataset_name: str) -> None:
    """Raise if a record of ``dataset_name`` is of a class its metadata's ``unseen_classes``
    lists (an unseen class or pair that appears in training), naming the classes."""
    metadata = MetadataCatalog.get(dataset_name)
    unseen = set(metadata.get("unseen_classes", []) or [])
    if not unseen:
        return
    classes = metadata.thing_classes
    found = sorted({classes[r["label"]] for r in DatasetCatalog.get(dataset_name)} & unseen)
    if found:
        raise ValueError(f"DATASETS.TRAIN {dataset_name!r} has images of {found}, which its "
                         f"metadata lists as unseen_classes: unseen classes must not train")


class DescribedTasksHead(nn.Module):
    """A head scoring T tasks given by their descriptions ``(T, D)``: it keeps them and the
    tasks that train, and in training scores the others ``-inf`` (:meth:`mask_unseen`)."""

    def __init__(self, descriptions: torch.Tensor, seen: Optional[torch.Tensor]):
        super().__init__()
        self.register_buffer("descriptions", descriptions.float(), persistent=False)
        self.register_buffer("seen", torch.ones(len(descriptions), dtype=torch.bool)
                             if seen is None else seen.bool(), persistent=False)

    @property
    def out_features(self) -> int:
        """The number of logits, T (as ``nn.Linear`` heads name it)."""
        return len(self.descriptions)

    def mask_unseen(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` ``(B, T)`` with the tasks that do not train at ``-inf`` in training."""
        return logits.masked_fill(~self.seen, float("-inf")) if self.training else logits


@CLASSIFIER_HEAD_REGISTRY.register()
class TAFEHead(DescribedTasksHead):
    """Pooled features ``(B, C)`` -> compatibility logits ``(B, T)`` (module docstring)."""

    @configurable
    def __init__(self, *, in_channels: int, descriptions: torch.Tensor,
                 seen: Optional[torch.Tensor], embedding_dims: Sequence[int],
                 feature_dims: Sequence[int], beta: float, embedding_lr_factor: float = 1.0):
        """
        Args:
            in_channels: C.
            descriptions: task descriptions ``(T, D)``, one per class.
            seen: ``(T,)`` bool, the tasks that train (None: all).
            embedding_dims: the task-embedding MLP's layer sizes.
            feature_dims: the dynamic layers' output sizes (the last is d, the TAFE's).
            beta: weight of the embedding loss (Eq. 5.8).
            embedding_lr_factor: the task-embedding network's learning rate relative to the
                rest (read by the trainer's optimizer from ``lr_factors``).
        """
        super().__init__(descriptions, seen)
        if not feature_dims:
            raise ValueError("MODEL.TAFE.FEATURE_DIMS is empty: expected the dynamic layers' "
                             "sizes")
        if beta < 0:
            raise ValueError(f"MODEL.TAFE.BETA={beta}: expected >= 0")
        self.meta_learner = TaskAwareMetaLearner(descriptions.shape[1], embedding_dims,
                                                 feature_dims)
        dims = [in_channels, *feature_dims]
        self.layers = nn.ModuleList(FactorizedLinear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.classifier = nn.Linear(feature_dims[-1], 1)
        self.task_projection = nn.Linear(embedding_dims[-1], feature_dims[-1])
        self.beta = beta
        self.lr_factors = {"meta_learner.embedding.": embedding_lr_factor}
        self._last: Optional[Dict[str, torch.Tensor]] = None

    @classmethod
    def from_config(cls, cfg, in_channels: int):
        tafe = cfg.MODEL.TAFE
        return {"in_channels": in_channels, **task_config(cfg),
                "embedding_dims": tuple(tafe.EMBEDDING_DIMS),
                "feature_dims": tuple(tafe.FEATURE_DIMS), "beta": tafe.BETA,
                "embedding_lr_factor": tafe.EMBEDDING_LR_FACTOR}

    def embeddings(self, features: torch.Tensor):
        """``(TAFEs (B, T, d), task embeddings in the TAFE space (T, d))`` of ``features``."""
        task_embedding, task_vectors = self.meta_learner(self.descriptions)
        x = features
        for layer, vectors in zip(self.layers, task_vectors):
            x = torch.relu(layer(x, vectors))
        return x, self.task_projection(task_embedding)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` -> compatibility logits ``(B, T)``."""
        tafe, task_embedding = self.embeddings(features)
        if self.training:
            self._last = {"tafe": tafe, "task_embedding": task_embedding}
        return self.mask_unseen(self.classifier(tafe)[..., 0])

    def losses(self, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``{"loss_emb": beta x Eq. 5.7}`` over the seen tasks, for the last training forward."""
        last, self._last = self._last, None
        if last is None or self.beta == 0:
            return {}
        seen = self.seen.nonzero()[:, 0]
        position = torch.full_like(self.seen, -1, dtype=torch.long)
        position[seen] = torch.arange(len(seen), device=seen.device)
        return {"loss_emb": self.beta * embedding_loss(
            last["tafe"][:, seen], last["task_embedding"][seen], position[labels])}


@CLASSIFIER_HEAD_REGISTRY.register()
class AttributeBilinearHead(DescribedTasksHead):
    """The bilinear compatibility baseline (ALE / DeViSE style, thesis Table 5.2's
    discriminative baselines): ``F(x, t) = x^T W t`` for features ``x`` ``(B, C)`` and
    descriptions ``t`` ``(T, D)``, one learned ``W`` ``(C, D)``; logits ``(B, T)``, trained with
    the same cross-entropy over the tasks, unseen tasks ``-inf`` in training."""

    @configurable
    def __init__(self, *, in_channels: int, descriptions: torch.Tensor,
                 seen: Optional[torch.Tensor]):
        super().__init__(descriptions, seen)
        self.bilinear = nn.Linear(in_channels, descriptions.shape[1], bias=False)

    @classmethod
    def from_config(cls, cfg, in_channels: int):
        return {"in_channels": in_channels, **task_config(cfg)}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mask_unseen(self.bilinear(features) @ self.descriptions.T)


@CLASSIFIER_HEAD_REGISTRY.register()
class VisualProductHead(DescribedTasksHead):
    """The "visual product" baseline of compositional zero-shot recognition (Misra et al.'s, the
    thesis' Table 5.4): two independent linear classifiers on the same features ``(B, C)``, one
    of the attribute value (V) and one of the object (O), each trained by its own cross-entropy
    on the seen pairs' images (:meth:`losses`; they replace the classifier's loss over pairs);
    pair t = (v, o) scores ``log p(v|x) + log p(o|x)``, logits ``(B, T)`` whose softmax is the
    product of the two probabilities renormalised over the pairs. The pairs come from the
    training set's ``pair_components`` metadata (per class: [value index, object index])."""

    replaces_loss_cls = True

    @configurable
    def __init__(self, *, in_channels: int, descriptions: torch.Tensor,
                 seen: Optional[torch.Tensor], components: torch.Tensor):
        """
        Args:
            in_channels: C.
            descriptions, seen: as :class:`TAFEHead`'s (kept for the masking).
            components: ``(T, 2)`` long, each pair's value and object index.
        """
        super().__init__(descriptions, seen)
        if components.shape != (len(descriptions), 2):
            raise ValueError(f"pair_components of shape {tuple(components.shape)}; expected "
                             f"({len(descriptions)}, 2): [value, object] per class")
        self.register_buffer("components", components.long(), persistent=False)
        self.value_classifier = nn.Linear(in_channels, int(components[:, 0].max()) + 1)
        self.object_classifier = nn.Linear(in_channels, int(components[:, 1].max()) + 1)
        self._last: Optional[Dict[str, torch.Tensor]] = None

    @classmethod
    def from_config(cls, cfg, in_channels: int):
        name = cfg.DATASETS.TRAIN[0]
        components = MetadataCatalog.get(name).get("pair_components", None)
        if components is None:
            raise ValueError(f"VisualProductHead needs (attribute, object) pairs: "
                             f"{name!r} has no pair_components metadata")
        return {"in_channels": in_channels, **task_config(cfg),
                "components": torch.tensor(components)}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` -> pair logits ``(B, T)``."""
        values = torch.log_softmax(self.value_classifier(features), dim=1)
        objects = torch.log_softmax(self.object_classifier(features), dim=1)
        if self.training:
            self._last = {"values": values, "objects": objects}
        logits = values[:, self.components[:, 0]] + objects[:, self.components[:, 1]]
        return self.mask_unseen(logits)

    def losses(self, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The value and object classifiers' cross-entropies for the last training forward."""
        last, self._last = self._last, None
        pairs = self.components[labels]
        return {"loss_value": F.nll_loss(last["values"], pairs[:, 0]),
                "loss_object": F.nll_loss(last["objects"], pairs[:, 1])}
