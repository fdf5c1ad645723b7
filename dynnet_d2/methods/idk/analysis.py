"""What the IDK benchmark measures (``tools/benchmark_idk.py``, projects/IDK/README.md): a cheap
pixel-space stage, the accuracy / cost curve of threshold cascades, the choice of the cascade to
serve (on the calibration split), same-process serving throughput with and without a deadline
for partial batches, and the plots (Fig. 4.3-style cost vs accuracy, Fig. 4.5 entropy
distributions).
"""
from functools import partial
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ...utils.measure import interleaved_rounds
from .cascade import CascadeData, evaluate_exits, exit_stages
from .classifiers import ThresholdIDK, uncertainty
from .runner import serve
from .stages import Stage


class PixelLogisticRegression(nn.Module):
    """Multinomial logistic regression on normalised pixels: images (B, C, H, W) -> logits."""

    def __init__(self, num_pixels: int, num_classes: int, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.linear = nn.Linear(num_pixels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(((images - self.mean) / self.std).flatten(1))


def train_pixel_logistic_regression(images: torch.Tensor, labels: torch.Tensor,
                                    num_classes: int, *, weight_decay: float = 1e-4,
                                    iters: int = 100) -> PixelLogisticRegression:
    """Fit :class:`PixelLogisticRegression` on uint8 ``images`` (N, C, H, W) by full-batch
    L-BFGS on the L2-regularised cross-entropy."""
    x = images.float()
    model = PixelLogisticRegression(x[0].numel(), num_classes, x.mean(), x.std())
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=iters, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss = loss + weight_decay * model.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return model.eval()


def threshold_curve(data: CascadeData, kind: str, reference: int, points: int = 200) -> Dict:
    """Accuracy, IDK rate and relative cost of the two-stage threshold cascades (Eq. 4.3 /
    4.4) for ``points`` thresholds at quantiles of stage 0's uncertainty."""
    u = uncertainty(kind, data.probs[0]).double()
    thresholds = torch.quantile(u, torch.linspace(0, 1, points, dtype=torch.float64)).unique()
    curve = {"threshold": [], "accuracy": [], "idk_rate": [], "relative_cost": []}
    for t in [-float("inf"), *thresholds.tolist()]:
        result = evaluate_exits(data, exit_stages(data, [ThresholdIDK(kind, t)]), reference)
        curve["threshold"].append(t)
        for key in ("accuracy", "relative_cost"):
            curve[key].append(result[key])
        curve["idk_rate"].append(result["idk_rate"][0])
    return curve


def serving_cascade(entry: Dict) -> Dict:
    """The row of the eps = 0 fitted cascade to serve, chosen on the calibration split only:
    the lowest calibration relative cost among the rows at least as accurate there as the
    reference (``entry["reference_calib_accuracy"]``), else the most accurate there."""
    rows = [r for r in entry["rows"] if r.get("epsilon") == 0.0]
    older = [r["method"] for r in rows if "calib_relative_cost" not in r]
    if older:
        raise ValueError(f"the eps = 0 rows {older} have no calib_relative_cost (a record of an "
                         f"older benchmark): refit them by running tools/benchmark_idk.py "
                         f"without --timing-only (the stage outputs are cached)")
    matched = [r for r in rows
               if r["calib_accuracy"] >= entry["reference_calib_accuracy"] - 1e-12]
    if matched:
        return min(matched, key=lambda r: r["calib_relative_cost"])
    return max(rows, key=lambda r: r["calib_accuracy"])


def time_serving(arms: Dict[str, Tuple], inputs: List[Dict], batch_size: int,
                 repeats: int) -> Dict[str, Dict]:
    """Serve ``inputs`` with every arm (stages, IDK classifiers[, max_wait_ms]), interleaved over
    ``repeats`` rounds in this process; per arm the median inputs/s and the latency percentiles
    of that median round, and the arm's ``max_wait_ms``."""
    labels = torch.tensor([int(d["label"]) for d in inputs])

    for arm in arms.values():  # warm-up
        serve(arm[0], arm[1], inputs[:2 * batch_size], batch_size)

    def turn(stages: Sequence[Stage], classifiers: Sequence[nn.Module],
             max_wait_ms: float = 0.0) -> Dict:
        run = serve(stages, classifiers, inputs, batch_size, max_wait_ms=max_wait_ms)
        return {**run.summary(labels, len(stages)), "max_wait_ms": max_wait_ms}

    runs = interleaved_rounds({name: partial(turn, *arm) for name, arm in arms.items()},
                              repeats)
    out = {}
    for name, results in runs.items():
        results = sorted(results, key=lambda r: r["inputs_per_s"])
        median = results[len(results) // 2]
        out[name] = {**median, "inputs_per_s_all": [r["inputs_per_s"] for r in runs[name]]}
    return out


def plot_entropy_distributions(values: Dict[str, Dict[str, np.ndarray]], path: str) -> None:
    """Fig. 4.5: per model, histograms of the prediction entropy on each split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(values), figsize=(4.2 * len(values), 3.2), squeeze=False)
    for ax, (model, splits) in zip(axes[0], values.items()):
        top = max(float(v.max()) for v in splits.values())
        bins = np.linspace(0, max(top, 1e-3), 40)
        for split, v in splits.items():
            ax.hist(v, bins=bins, density=True, histtype="step", label=split)
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("entropy of the prediction (nats)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cost_accuracy(curves: Dict[str, Dict], points: Dict[str, Tuple[float, float]],
                       reference_accuracy: float, path: str, title: str) -> None:
    """Fig. 4.3-style: test accuracy against relative cost for threshold sweeps (lines) and
    fitted cascades (points), with the reference model's accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, curve in curves.items():
        ax.plot(curve["relative_cost"], [100 * a for a in curve["accuracy"]], label=name)
    for name, (cost, accuracy) in points.items():
        ax.scatter([cost], [100 * accuracy], label=name, zorder=3)
    ax.axhline(100 * reference_accuracy, color="gray", linestyle="--", label="reference alone")
    ax.set_xlabel("relative cost (FLOPs of the cascade / FLOPs of the reference)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
