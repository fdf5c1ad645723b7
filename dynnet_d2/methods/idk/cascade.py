"""IDK prediction cascades (thesis Sec. 4.3): evaluation, fitting of the IDK classifiers, and
the saved cascade.

Stage ``j`` (0-based, N stages) gives probabilities ``P_j`` (n, K) and per-input costs ``c_j``
(n,); the IDK classifier after stage ``j < N - 1`` gives ``h_j`` (n,). An input is answered by
the first stage whose ``h_j <= 0.5`` (Eq. 4.7), or by the last stage.

Fitting (``IDK_METHOD_REGISTRY``, all on a held-out calibration split):

* ``prob_grid`` / ``entropy_grid``: the threshold of Eq. 4.3 / 4.4 with the lowest IDK rate
  (Eq. 4.9-4.10) among ``grid_size`` candidates (quantiles of the uncertainty, plus "pass
  everything") whose cascade accuracy meets the target (Eq. 4.11); deeper cascades stage-wise
  from the last pair, each threshold against the already fitted rest of the cascade.
* ``entropy_cost`` / ``mlp_cost``: Eq. 4.5 trained by full-batch Adam on the cost-regularised
  0-1 risk (Eq. 4.12-4.14; N models: Eq. 4.15-4.16), jointly or stage-wise. Costs are in units
  of the reference (most accurate) stage's mean cost, so ``lambda`` is the number of errors one
  call of that stage is worth. Eq. 4.15 states ``p_0 = p_N = 1``; with ``p_N = 1`` the last
  model's errors would never count, and for N = 2 it would not reduce to Eq. 4.13, so the last
  stage has ``p_N = 0`` (it must answer) and ``p_0 = 1``. To meet an accuracy target
  (``meet_target``), k in ``lambda x 2^k`` is bisected in [-8, 4] (to 0.1) for the largest
  lambda, i.e. the cheapest cascade, whose calibration accuracy meets it.
* ``entropy_oblivious`` / ``mlp_oblivious``: the cost-oblivious baselines, Eq. 4.5 trained with
  binary cross-entropy to predict that the stage's answer is wrong.

The oracle cascade (:func:`oracle_exit_stages`) answers with the first stage that is right.
:func:`stage_order_problems` says where a cascade's stages are not cheapest first and most
accurate last.
"""
import dataclasses
import json
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.utils.registry import Registry
from torch import nn
from torch.nn import functional as F

from ...utils.io import atomic_write_json
from .classifiers import MLPIDK, LogisticIDK, ThresholdIDK, classifier_from_state, entropy
from .classifiers import uncertainty as uncertainty_of
from .stages import CascadeConfigError, Stage

IDK_METHOD_REGISTRY = Registry("IDK_METHOD")
IDK_METHOD_REGISTRY.__doc__ = """How the IDK classifiers of a cascade are fitted (CASCADE.METHOD):
a function ``(data: CascadeData, spec: FitSpec) -> list of N - 1 IDK classifiers``."""
CASCADE_FILE_VERSION = 1
FITS = ("joint", "stagewise")
# MEET_TARGET searches LAMBDA x 2^k for k in this range, to this resolution of k.
LAMBDA_EXPONENTS = (-8, 4)
LAMBDA_RESOLUTION = 0.1


@dataclasses.dataclass
class CascadeData:
    """What the stages output on one split: ``labels`` (n,), ``probs`` N x (n, K),
    ``costs`` N x (n,) float64."""

    labels: torch.Tensor
    probs: List[torch.Tensor]
    costs: List[torch.Tensor]

    def __post_init__(self):
        n = self.labels.shape[0]
        if len(self.probs) != len(self.costs) or not self.probs:
            raise ValueError(f"{len(self.probs)} probability tensors and {len(self.costs)} "
                             f"cost tensors: expected one of each per stage")
        for j, (p, c) in enumerate(zip(self.probs, self.costs)):
            if p.shape[0] != n or c.shape != (n,):
                raise ValueError(f"stage {j}: probabilities {tuple(p.shape)} and costs "
                                 f"{tuple(c.shape)} for {n} labels")

    @property
    def num_stages(self) -> int:
        return len(self.probs)

    def correct(self, j: int) -> torch.Tensor:
        """Whether stage ``j`` is right on each input (n,) bool."""
        return self.probs[j].argmax(dim=1) == self.labels

    def accuracies(self) -> List[float]:
        return [float(self.correct(j).double().mean()) for j in range(self.num_stages)]

    def select(self, stages: Sequence[int]) -> "CascadeData":
        """The data of a sub-cascade of the given stages, in that order."""
        return CascadeData(self.labels, [self.probs[j] for j in stages],
                           [self.costs[j] for j in stages])


@dataclasses.dataclass
class FitSpec:
    """How to fit: the accuracy target of Eq. 4.11 and the CASCADE.* hyper-parameters."""

    target: float
    reference: int
    grid_size: int = 1000
    lam: float = 0.04
    fit: str = "joint"
    meet_target: bool = True
    iters: int = 500
    lr: float = 0.05
    mlp_hidden: Tuple[int, ...] = (64, 64)
    seed: int = 0


def reference_stage(data: CascadeData) -> int:
    """The most accurate stage (the cheaper one of a tie): ``m^acc`` of Eq. 4.11."""
    accuracies = data.accuracies()
    return accuracies.index(max(accuracies))


def stage_order_problems(data: CascadeData, names: Sequence[str]) -> List[str]:
    """What is out of order among the stages (called ``names``) on ``data``: every stage whose
    mean cost is not below the next stage's, and the most accurate earlier stage when it is more
    accurate than the last one (the reference a cascade should end with). Empty when ordered."""
    accuracies = data.accuracies()
    costs = [float(c.mean()) for c in data.costs]
    problems = [f"stage {j} {names[j]!r} (mean cost {costs[j]:.4g}) is not cheaper than stage "
                f"{j + 1} {names[j + 1]!r} ({costs[j + 1]:.4g})"
                for j in range(data.num_stages - 1) if costs[j] >= costs[j + 1]]
    best = max(range(data.num_stages - 1), key=lambda j: accuracies[j])
    if accuracies[best] > accuracies[-1]:
        problems.append(f"stage {best} {names[best]!r} is more accurate "
                        f"({100 * accuracies[best]:.2f} %) than the last stage {names[-1]!r} "
                        f"({100 * accuracies[-1]:.2f} %)")
    return problems


def check_target(epsilon: float, absolute: float = 0.0) -> None:
    """``epsilon`` in [0, 1) and ``absolute`` in [0, 1] (0 = use ``epsilon``)."""
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"CASCADE.EPSILON={epsilon}: expected a value in [0, 1)")
    if not 0.0 <= absolute <= 1.0:
        raise ValueError(f"CASCADE.TARGET_ACCURACY={absolute}: expected a value in (0, 1], "
                         f"or 0 to use EPSILON")


def accuracy_target(data: CascadeData, epsilon: float, absolute: float = 0.0) -> float:
    """``absolute`` when > 0, else ``(1 - epsilon) x`` the reference stage's accuracy."""
    check_target(epsilon, absolute)
    if absolute > 0:
        return absolute
    return (1.0 - epsilon) * max(data.accuracies())


def exit_stages(data: CascadeData, classifiers: Sequence[nn.Module]) -> torch.Tensor:
    """The stage answering each input (n,) long, Eq. 4.7 applied stage after stage."""
    if len(classifiers) != data.num_stages - 1:
        raise ValueError(f"{len(classifiers)} IDK classifiers for {data.num_stages} stages; "
                         f"expected {data.num_stages - 1}")
    exits = torch.full_like(data.labels, data.num_stages - 1)
    active = torch.ones_like(data.labels, dtype=torch.bool)
    with torch.no_grad():
        for j, classifier in enumerate(classifiers):
            idk = classifier(data.probs[j]) > 0.5
            exits[active & ~idk] = j
            active &= idk
    return exits


def oracle_exit_stages(data: CascadeData) -> torch.Tensor:
    """The oracle cascade: the first stage that is right, or the first stage when none is."""
    correct = torch.stack([data.correct(j) for j in range(data.num_stages)])
    return torch.where(correct.any(dim=0), correct.float().argmax(dim=0),
                       torch.zeros_like(data.labels))


def evaluate_exits(data: CascadeData, exits: torch.Tensor, reference: int) -> Dict:
    """Accuracy (Eq. 4.8), IDK rate per level (the fraction of all inputs stage j passes on,
    Eq. 4.9), mean cost per input and relative cost ``cost_casc / cost_ref`` (Sec. 4.4)."""
    n, stages = data.labels.shape[0], torch.arange(data.num_stages)
    probs = torch.stack(data.probs)[exits, torch.arange(n)]
    reached = exits[None, :] >= stages[:, None]  # (N, n): stage j ran on input i
    cost = (torch.stack(data.costs) * reached).sum(dim=0)
    mean_cost = float(cost.mean())
    return {
        "accuracy": float((probs.argmax(dim=1) == data.labels).double().mean()),
        "idk_rate": [float(reached[j + 1].double().mean()) for j in range(data.num_stages - 1)],
        "mean_cost": mean_cost,
        "relative_cost": mean_cost / float(data.costs[reference].mean()),
    }


def check_grid_size(grid_size: int) -> None:
    """At least 100 candidate thresholds (the thesis' grid)."""
    if grid_size < 100:
        raise ValueError(f"CASCADE.GRID_SIZE={grid_size}: expected >= 100 candidate thresholds")


def grid_threshold(u: torch.Tensor, correct_here: torch.Tensor, correct_down: torch.Tensor,
                   target: float, grid_size: int) -> float:
    """The threshold ``t`` on the uncertainty ``u`` (IDK iff ``u > t``) with the lowest IDK rate
    among ``-inf`` and ``grid_size`` quantiles of ``u`` whose accuracy (the next stage's
    answer where IDK, else this stage's) is at least ``target``; ties go to the more accurate.
    When none meets the target, the most accurate candidate (ties: the lowest IDK rate)."""
    check_grid_size(grid_size)
    u = u.to(torch.float64)
    levels = torch.linspace(0, 1, grid_size, dtype=torch.float64)
    candidates = torch.cat([torch.tensor([-math.inf], dtype=torch.float64),
                            torch.quantile(u, levels)]).unique()
    idk = u[None, :] > candidates[:, None]
    right = torch.where(idk, correct_down[None, :], correct_here[None, :]).sum(dim=1)
    passed = idk.sum(dim=1)
    ok = right >= target * u.shape[0] - 1e-6
    # integer counts make the keys lexicographic: fewest passed on, then most right (feasible);
    # most right, then fewest passed on (when nothing is feasible)
    scale = u.shape[0] + 1
    key = passed * scale - right if ok.any() else -right * scale + passed
    if ok.any():
        key[~ok] = key.max() + 1
    return float(candidates[key.argmin()])


def _fit_grid(kind: str, data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    thresholds: List[float] = [0.0] * (data.num_stages - 1)
    down = data.correct(data.num_stages - 1)
    for j in reversed(range(data.num_stages - 1)):
        u = uncertainty_of(kind, data.probs[j])
        thresholds[j] = grid_threshold(u, data.correct(j), down, spec.target, spec.grid_size)
        down = torch.where(u > thresholds[j], down, data.correct(j))
    return [ThresholdIDK(kind, t) for t in thresholds]


@IDK_METHOD_REGISTRY.register()
def prob_grid(data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    """Cascade by probability: Eq. 4.3 by grid search."""
    return _fit_grid("prob", data, spec)


@IDK_METHOD_REGISTRY.register()
def entropy_grid(data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    """Cascade by entropy: Eq. 4.4 by grid search."""
    return _fit_grid("entropy", data, spec)


def cascade_risk(idk_probs: Sequence[torch.Tensor], errors: Sequence[torch.Tensor],
                 costs: Sequence[torch.Tensor], lam: float) -> torch.Tensor:
    """Per-input regularised risk (n,) of Eq. 4.12 with Eq. 4.15-4.16 (Eq. 4.13-4.14 for two
    stages): ``sum_j prod_{q<j} p_q [(1 - p_j) e_j + lam c_j]`` with ``p_{N-1} = 0`` for the
    last stage (see the module docstring), ``e_j`` 1 where stage j is wrong."""
    if len(idk_probs) != len(errors) - 1 or len(costs) != len(errors):
        raise ValueError(f"{len(idk_probs)} IDK probabilities, {len(errors)} error and "
                         f"{len(costs)} cost tensors: expected N - 1, N and N")
    reach = torch.ones_like(errors[0])
    risk = torch.zeros_like(errors[0])
    for j, (error, cost) in enumerate(zip(errors, costs)):
        p = idk_probs[j] if j < len(idk_probs) else torch.zeros_like(error)
        risk = risk + reach * ((1 - p) * error + lam * cost)
        reach = reach * p
    return risk


def _new_classifier(feature: str, data: CascadeData, j: int, spec: FitSpec) -> nn.Module:
    if feature == "entropy":
        h = entropy(data.probs[j])
        return LogisticIDK(mean=float(h.mean()), std=float(h.std()))
    return MLPIDK(data.probs[j].shape[1], spec.mlp_hidden)


def _train(modules: Sequence[nn.Module], objective: Callable[[], torch.Tensor],
           spec: FitSpec) -> None:
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=spec.lr)
    for m in modules:
        m.train()
    for _ in range(spec.iters):
        optimizer.zero_grad()
        objective().backward()
        optimizer.step()
    for m in modules:
        m.eval()


def _fit_cost_aware_once(feature: str, data: CascadeData, spec: FitSpec,
                         lam: float) -> List[nn.Module]:
    with torch.random.fork_rng():
        torch.manual_seed(spec.seed)
        classifiers = [_new_classifier(feature, data, j, spec)
                       for j in range(data.num_stages - 1)]
    unit = float(data.costs[spec.reference].mean())
    errors = [(~data.correct(j)).float() for j in range(data.num_stages)]
    costs = [(c / unit).float() for c in data.costs]
    if spec.fit == "joint":
        _train(classifiers, lambda: cascade_risk(
            [h(p) for h, p in zip(classifiers, data.probs)], errors, costs, lam).mean(), spec)
        return classifiers
    down_error, down_cost = errors[-1], costs[-1]
    for j in reversed(range(data.num_stages - 1)):
        h, p, e, c = classifiers[j], data.probs[j], errors[j], costs[j]
        _train([h], lambda: cascade_risk([h(p)], [e, down_error], [c, down_cost], lam).mean(),
               spec)
        with torch.no_grad():
            idk = h(p) > 0.5
        down_error = torch.where(idk, down_error, e)
        down_cost = c + torch.where(idk, down_cost, torch.zeros_like(down_cost))
    return classifiers


def _fit_cost_aware(feature: str, data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    if not spec.meet_target:
        return _fit_cost_aware_once(feature, data, spec, spec.lam)
    fitted = {}

    def meets(k: float) -> bool:
        if k not in fitted:
            classifiers = _fit_cost_aware_once(feature, data, spec, spec.lam * 2.0 ** k)
            result = evaluate_exits(data, exit_stages(data, classifiers), spec.reference)
            fitted[k] = (classifiers, result["accuracy"] >= spec.target - 1e-12,
                         result["accuracy"])
        return fitted[k][1]

    # a larger lambda passes fewer inputs on: bisect for the largest k that meets the target
    low, high = LAMBDA_EXPONENTS
    if not meets(low):
        return max(fitted.values(), key=lambda f: f[2])[0]
    if meets(high):
        return fitted[high][0]
    while high - low > LAMBDA_RESOLUTION:
        middle = (low + high) / 2
        low, high = (middle, high) if meets(middle) else (low, middle)
    return fitted[low][0]


@IDK_METHOD_REGISTRY.register()
def entropy_cost(data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    """Cascade by entropy via the cost-aware objective: Eq. 4.5 (entropy feature), Eq. 4.12."""
    return _fit_cost_aware("entropy", data, spec)


@IDK_METHOD_REGISTRY.register()
def mlp_cost(data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    """Eq. 4.5 with an MLP feature of the probabilities, trained on Eq. 4.12."""
    return _fit_cost_aware("mlp", data, spec)


def _fit_oblivious(feature: str, data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    classifiers = []
    for j in range(data.num_stages - 1):
        with torch.random.fork_rng():
            torch.manual_seed(spec.seed)
            h = _new_classifier(feature, data, j, spec)
        wrong, p = (~data.correct(j)).float(), data.probs[j]
        _train([h], lambda: F.binary_cross_entropy_with_logits(h.logit(p), wrong), spec)
        classifiers.append(h)
    return classifiers


@IDK_METHOD_REGISTRY.register()
def entropy_oblivious(data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    """Cost-oblivious baseline: Eq. 4.5 (entropy feature) trained with cross-entropy to
    predict the stage's mistakes."""
    return _fit_oblivious("entropy", data, spec)


@IDK_METHOD_REGISTRY.register()
def mlp_oblivious(data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    """Cost-oblivious baseline: an MLP on the probability vector trained with cross-entropy
    to predict the stage's mistakes."""
    return _fit_oblivious("mlp", data, spec)


def check_fit(method: str, spec: FitSpec) -> None:
    """The fitting method and its hyper-parameters, before any data is collected."""
    if method not in IDK_METHOD_REGISTRY:
        raise ValueError(f"CASCADE.METHOD={method!r}; expected one of "
                         f"{sorted(name for name, _ in IDK_METHOD_REGISTRY)}")
    check_grid_size(spec.grid_size)
    if spec.fit not in FITS:
        raise ValueError(f"CASCADE.LEARNED.FIT={spec.fit!r}; expected one of {FITS}")
    if spec.lam < 0:
        raise ValueError(f"CASCADE.LEARNED.LAMBDA={spec.lam}: expected >= 0")


def fit_classifiers(method: str, data: CascadeData, spec: FitSpec) -> List[nn.Module]:
    """The IDK classifiers of ``method`` (a name in ``IDK_METHOD_REGISTRY``) fitted on
    ``data``."""
    check_fit(method, spec)
    if data.num_stages < 2:
        raise ValueError(f"a cascade needs at least 2 stages, got {data.num_stages}")
    return IDK_METHOD_REGISTRY.get(method)(data, spec)


class IDKCascade:
    """Stages, the IDK classifiers between them, and how they were fitted; saved as JSON."""

    def __init__(self, stages: Sequence[Stage], classifiers: Sequence[nn.Module], *,
                 method: str, fit: Optional[Dict] = None):
        if len(classifiers) != len(stages) - 1:
            raise ValueError(f"{len(classifiers)} IDK classifiers for {len(stages)} stages; "
                             f"expected {len(stages) - 1}")
        self.stages, self.classifiers = list(stages), list(classifiers)
        self.method, self.fit = method, dict(fit or {})

    def save(self, path: str) -> None:
        atomic_write_json(path, {
            "version": CASCADE_FILE_VERSION, "method": self.method,
            "stages": [s.describe() for s in self.stages],
            "classifiers": [c.state() for c in self.classifiers], "fit": self.fit}, indent=2)

    @classmethod
    def load(cls, path: str, stages: Sequence[Stage]) -> "IDKCascade":
        """The cascade saved at ``path``; its stage list must be ``stages``."""
        with open(path) as f:
            saved = json.load(f)
        if saved.get("version") != CASCADE_FILE_VERSION:
            raise CascadeConfigError(f"cascade file {path!r} has version "
                                     f"{saved.get('version')!r}; expected "
                                     f"{CASCADE_FILE_VERSION}")
        given = [s.describe() for s in stages]
        if saved["stages"] != given:
            raise CascadeConfigError(
                f"cascade file {path!r} was fitted for other stages: "
                f"{stage_differences(saved['stages'], given)}; fit it again for these stages")
        return cls(stages, [classifier_from_state(s) for s in saved["classifiers"]],
                   method=saved["method"], fit=saved.get("fit"))


def _short(key: str, value, limit: int = 40) -> str:
    """``value`` for one line: a digest's first 12 digits, anything else up to ``limit``."""
    text = value if isinstance(value, str) else repr(value)
    limit = 12 if key.endswith("sha256") else limit
    return text if len(text) <= limit else text[:limit] + "..."


def stage_differences(saved: Sequence[Dict], given: Sequence[Dict]) -> str:
    """One short line naming the stages (``describe()`` dicts) of ``given`` that differ from
    ``saved`` and in what, e.g. ``stage 1 'R38' (weights_sha256 9f3a1c2b0d4e... in the file,
    77e0d1aa35b2... here)``."""
    if len(saved) != len(given):
        return (f"{len(saved)} stages ({', '.join(s.get('name', '?') for s in saved)}) in the "
                f"file, {len(given)} ({', '.join(s['name'] for s in given)}) here")
    changed = []
    for j, (old, new) in enumerate(zip(saved, given)):
        keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if keys:
            what = ", ".join(f"{k} {_short(k, old.get(k))} in the file, "
                             f"{_short(k, new.get(k))} here" for k in keys)
            changed.append(f"stage {j} {new['name']!r} ({what})")
    return "; ".join(changed)
