"""Few-shot classification with example images as task descriptions (thesis §5.5, Table 5.6
analogue), on cached pooled features of a backbone trained on the base classes.

An episode (seed s, K shots): the base classes keep every training image; each novel class
gives K training images drawn with a generator seeded by (s, class) (:func:`draw_shots`). A
method sees the base images' features and labels and the novel shots', and scores every test
image over all classes (``(M, C)``); :func:`accuracies` gives top-1 on the novel classes' test
images (predicting among all classes, and among the novel ones only) and on every test image.

Methods (:data:`FEWSHOT_METHODS`), all on the same features:

* ``tafe``: a :class:`~.head.TAFEHead` whose task descriptions are mean example features. It
  trains on the base classes only: each iteration describes every base class by the mean of K of
  its training features drawn afresh (so descriptions are as noisy as a novel class's) and
  scores a batch of base images (Eq. 5.6 + beta Eq. 5.7). At test, a novel class is described
  by the mean of its K shots, a base class by the mean of all its training images. The novel
  shots reach the model only as descriptions.
* ``logistic_regression``: scikit-learn's multinomial logistic regression on the standardised
  features of every base image and the novel shots, classes weighted inversely to their counts.
* ``prototypes`` (a prototypical network's classifier on fixed features): the nearest class
  mean by squared Euclidean distance, base means over all their images, novel over the shots.
* ``matching`` (a matching network's classifier on fixed features, no full-context embedding):
  a softmax attention over the cosine similarities to K supports per class (a base class's K
  drawn as a novel class's), a class scoring the attention on its supports.
"""
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .head import TAFEHead

FEWSHOT_METHODS: Dict[str, Callable] = {}


def fewshot_method(fn: Callable) -> Callable:
    """Register ``fn(episode, test_features, **options) -> scores (M, C)`` under its name."""
    FEWSHOT_METHODS[fn.__name__] = fn
    return fn


@dataclass
class Episode:
    """The training data of one episode: features ``(N, D)`` and labels ``(N,)`` of the base
    classes' images and the novel shots; ``novel`` the novel class indices; C classes."""

    features: torch.Tensor
    labels: torch.Tensor
    novel: List[int]
    num_classes: int
    shots: int
    seed: int

    @property
    def base(self) -> List[int]:
        return [c for c in range(self.num_classes) if c not in set(self.novel)]

    def class_means(self) -> torch.Tensor:
        """``(C, D)``: each class's mean training feature."""
        return torch.stack([self.features[self.labels == c].mean(0)
                            for c in range(self.num_classes)])

    @cached_property
    def members(self) -> List[torch.Tensor]:
        """Per class, the rows of its training images (found once: :meth:`supports` draws from
        them every TAFE-Net iteration)."""
        return [torch.nonzero(self.labels == c)[:, 0] for c in range(self.num_classes)]

    def supports(self, shots: int, generator: torch.Generator) -> torch.Tensor:
        """``(C, shots, D)``: ``shots`` training features of every class drawn with
        ``generator`` (a novel class's are its shots, in a drawn order)."""
        return torch.stack([
            self.features[rows[torch.randperm(len(rows), generator=generator)[:shots]]]
            for rows in self.members])


def draw_shots(labels: torch.Tensor, novel: Sequence[int], shots: int, seed: int
               ) -> Dict[int, torch.Tensor]:
    """``{novel class: K row indices of its images in labels}``, drawn with a generator seeded
    by (seed, class); K larger than a class's images is an error naming both."""
    drawn = {}
    for c in novel:
        members = torch.nonzero(labels == c)[:, 0]
        if shots > len(members):
            raise ValueError(f"{shots} shots of class {c}, which has {len(members)} training "
                             f"images")
        generator = torch.Generator().manual_seed(seed * 1000 + c)
        drawn[c] = members[torch.randperm(len(members), generator=generator)[:shots]]
    return drawn


def episode(features: torch.Tensor, labels: torch.Tensor, novel: Sequence[int], shots: int,
            seed: int, num_classes: int) -> Episode:
    """The episode (seed, shots) of the training features ``(N, D)`` and labels ``(N,)``."""
    shot_rows = torch.cat(list(draw_shots(labels, novel, shots, seed).values()))
    is_base = ~torch.isin(labels, torch.tensor(list(novel)))
    rows = torch.cat([torch.nonzero(is_base)[:, 0], shot_rows])
    return Episode(features[rows], labels[rows], sorted(novel), num_classes, shots, seed)


def accuracies(scores: torch.Tensor, labels: torch.Tensor, novel: Sequence[int]
               ) -> Dict[str, float]:
    """Top-1 in percent: ``novel`` (novel images, among all classes), ``novel_among_novel``,
    ``base`` (base images, among all) and ``all``."""
    novel_t = torch.tensor(list(novel))
    is_novel = torch.isin(labels, novel_t)
    predicted = scores.argmax(1)
    among_novel = novel_t[scores[:, novel_t].argmax(1)]
    return {"novel": 100.0 * float((predicted == labels)[is_novel].float().mean()),
            "novel_among_novel": 100.0 * float((among_novel == labels)[is_novel].float().mean()),
            "base": 100.0 * float((predicted == labels)[~is_novel].float().mean()),
            "all": 100.0 * float((predicted == labels).float().mean())}


@fewshot_method
def prototypes(ep: Episode, test: torch.Tensor) -> torch.Tensor:
    return -torch.cdist(test, ep.class_means()) ** 2


@fewshot_method
def matching(ep: Episode, test: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(ep.seed)
    supports = ep.supports(ep.shots, generator)  # (C, K, D)
    similarity = F.normalize(test, dim=1) @ F.normalize(supports.flatten(0, 1), dim=1).T
    attention = similarity.softmax(dim=1).view(len(test), ep.num_classes, ep.shots)
    return attention.sum(dim=2)


@fewshot_method
def logistic_regression(ep: Episode, test: torch.Tensor, max_iter: int = 1000) -> torch.Tensor:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(ep.features.numpy())
    model = LogisticRegression(max_iter=max_iter, class_weight="balanced")
    model.fit(scaler.transform(ep.features.numpy()), ep.labels.numpy())
    scores = np.full((len(test), ep.num_classes), -np.inf)
    scores[:, model.classes_] = model.decision_function(scaler.transform(test.numpy()))
    return torch.from_numpy(scores)


@fewshot_method
def tafe(ep: Episode, test: torch.Tensor, iterations: int = 3000, batch_size: int = 64,
         lr: float = 1e-3, dims: Sequence[int] = (256, 256, 256), beta: float = 0.1
         ) -> torch.Tensor:
    torch.manual_seed(ep.seed)
    generator = torch.Generator().manual_seed(ep.seed)
    base = torch.tensor(ep.base)
    head = TAFEHead(in_channels=ep.features.shape[1], descriptions=ep.class_means(),
                    seen=torch.isin(torch.arange(ep.num_classes), base),
                    embedding_dims=tuple(dims), feature_dims=tuple(dims), beta=beta)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    base_rows = torch.nonzero(torch.isin(ep.labels, base))[:, 0]
    head.train()
    for _ in range(iterations):
        head.descriptions = ep.supports(ep.shots, generator).mean(1)
        batch = base_rows[torch.randint(len(base_rows), (batch_size,), generator=generator)]
        labels = ep.labels[batch]
        loss = F.cross_entropy(head(ep.features[batch]), labels)
        loss = loss + sum(head.losses(labels).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    head.descriptions = ep.class_means()
    with torch.no_grad():
        return head(test)
