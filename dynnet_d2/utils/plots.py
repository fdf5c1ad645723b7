"""Plots the methods' benchmarks share (matplotlib, Agg backend, written with ``savefig``):

* :func:`plot_per_class_heatmap`: a classes x layers matrix, e.g. SkipNet's per-block skip ratio
  of each class (thesis Fig. 2.10) or DeepMoE's per-layer channel utilisation of each class;
* :func:`plot_accuracy_vs_flops`: top-1 against executed FLOPs relative to a plain network, e.g.
  over SkipNet's alpha (Fig. 2.7) or DeepMoE's lambda (Fig. 3.3).
"""
from typing import Dict, List, Optional, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_per_class_heatmap(matrix: np.ndarray, class_names: Sequence[str], path: str, *,
                           title: str, xlabel: str, colorbar_label: str,
                           borders: Sequence[int] = ()) -> None:
    """Heat map of ``matrix`` (classes x layers, values in [0, 1]); a white line before each
    column index in ``borders`` (e.g. where a stage starts)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * matrix.shape[1] + 2), 4))
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for border in borders:
        ax.axvline(border - 0.5, color="white", linewidth=1)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label=colorbar_label)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_flops(points: Sequence[Dict], path: str, title: str,
                           reference: Optional[Dict] = None,
                           xlabel: str = "executed FLOPs / plain ResNet FLOPs") -> None:
    """Top-1 (%) against executed FLOPs relative to the plain network, one labelled point per
    entry of ``points`` (``{"label", "relative_flops", "top1"}``, optionally ``"series"``: the
    points of one series are joined in the given order, each series its own line and legend
    entry); ``reference`` (``{"label", "top1"}``) a dashed horizontal line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    series: Dict[str, List[Dict]] = {}
    for p in points:
        series.setdefault(p.get("series", ""), []).append(p)
    for name, members in series.items():
        ax.plot([p["relative_flops"] for p in members], [p["top1"] for p in members], "o-",
                label=name or None)
    for p in points:
        ax.annotate(p["label"], (p["relative_flops"], p["top1"]), fontsize=7,
                    textcoords="offset points", xytext=(3, 3))
    if reference is not None:
        ax.axhline(reference["top1"], color="grey", linestyle="--", label=reference["label"])
    if reference is not None or any(series):
        ax.legend(fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
