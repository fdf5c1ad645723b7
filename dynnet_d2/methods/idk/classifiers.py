"""IDK classifiers (thesis Sec. 4.3): from a stage's class probabilities ``(n, K)`` to the
probability ``h`` (n,) that the stage says "I don't know"; the next stage is asked where
``h > 0.5`` (Eq. 4.7).

* :class:`ThresholdIDK`: ``h = 1[u(p) > t]`` on an uncertainty ``u``: ``"prob"``
  ``u = 1 - max_j p_j`` (Eq. 4.3 with ``alpha = 1 - t``) or ``"entropy"`` ``u = H[p]``
  (Eq. 4.4, Eq. 4.6).
* :class:`LogisticIDK`: ``h = sigma(a1 * (H[p] - mean) / std + a0)`` (Eq. 4.5 with the entropy
  feature, standardised by the calibration split's mean and std of ``H``).
* :class:`MLPIDK`: ``h = sigma(NN(p))``, Eq. 4.5 with a neural feature of the probabilities.

Each is an ``nn.Module`` whose ``forward`` gives ``h``; ``state()`` / :func:`classifier_from_state`
save and rebuild it as JSON-friendly values.
"""
from typing import Dict, Sequence

import torch
from torch import nn

UNCERTAINTIES = ("prob", "entropy")


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """``H[p] = -sum_j p_j log p_j`` (n,) of probabilities (n, K) (Eq. 4.6; 0 log 0 = 0)."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(dim=1)


def uncertainty(kind: str, probs: torch.Tensor) -> torch.Tensor:
    """The uncertainty (n,) a threshold IDK classifier compares: see the module docstring."""
    if kind == "prob":
        return 1.0 - probs.max(dim=1).values
    if kind == "entropy":
        return entropy(probs)
    raise ValueError(f"unknown uncertainty {kind!r}; expected one of {UNCERTAINTIES}")


class ThresholdIDK(nn.Module):
    """``h = 1[u(p) > threshold]`` (Eq. 4.3 / 4.4)."""

    def __init__(self, kind: str, threshold: float):
        super().__init__()
        uncertainty(kind, torch.ones(1, 2) / 2)  # validates kind
        self.kind, self.threshold = kind, float(threshold)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return (uncertainty(self.kind, probs) > self.threshold).to(probs.dtype)

    def state(self) -> Dict:
        return {"type": "ThresholdIDK", "kind": self.kind, "threshold": self.threshold}


class LogisticIDK(nn.Module):
    """``h = sigma(a1 * (H[p] - mean) / std + a0)`` (Eq. 4.5, entropy feature)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0, a0: float = 0.0, a1: float = 1.0):
        super().__init__()
        self.mean, self.std = float(mean), max(float(std), 1e-12)
        self.a = nn.Parameter(torch.tensor([float(a0), float(a1)]))

    def logit(self, probs: torch.Tensor) -> torch.Tensor:
        feature = (entropy(probs) - self.mean) / self.std
        return self.a[1] * feature + self.a[0]

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(probs))

    def state(self) -> Dict:
        a0, a1 = (float(v) for v in self.a.detach())
        return {"type": "LogisticIDK", "mean": self.mean, "std": self.std, "a0": a0, "a1": a1}


class MLPIDK(nn.Module):
    """``h = sigma(NN(p))``: an MLP with ReLU on the probability vector (Eq. 4.5)."""

    def __init__(self, num_classes: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        widths = [num_classes, *hidden]
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
        self.num_classes, self.hidden = num_classes, [int(h) for h in hidden]

    def logit(self, probs: torch.Tensor) -> torch.Tensor:
        return self.net(probs).squeeze(1)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(probs))

    def state(self) -> Dict:
        return {"type": "MLPIDK", "num_classes": self.num_classes, "hidden": self.hidden,
                "weights": {k: v.tolist() for k, v in self.state_dict().items()}}


def classifier_from_state(state: Dict) -> nn.Module:
    """Rebuild an IDK classifier from its ``state()``."""
    kind = state.get("type")
    if kind == "ThresholdIDK":
        return ThresholdIDK(state["kind"], state["threshold"])
    if kind == "LogisticIDK":
        return LogisticIDK(state["mean"], state["std"], state["a0"], state["a1"])
    if kind == "MLPIDK":
        module = MLPIDK(state["num_classes"], state["hidden"])
        module.load_state_dict({k: torch.tensor(v) for k, v in state["weights"].items()})
        return module
    raise ValueError(f"unknown IDK classifier type {kind!r}; expected ThresholdIDK, "
                     f"LogisticIDK or MLPIDK")
