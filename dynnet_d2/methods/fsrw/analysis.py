"""What the class vectors look like (thesis Fig. 6.4): (a) the classes' vectors as a heat map,
features sorted by their variance across classes; (b) a 2-D t-SNE of the vectors of every
support example with the mean vector of each class. And how fast fine-tuning learns (Fig. 6.3):
nAP50 against fine-tuning iterations.

Shapes: ``vectors`` ``(N, r)`` (one per class); ``per_shot`` ``(M, r)`` with ``labels`` ``(M,)``
in [0, N) (one vector per support example).
"""
from typing import Dict, Sequence, Tuple

import numpy as np


def sort_by_class_variance(vectors: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(vectors with columns reordered, that order)``: features by decreasing variance across
    the classes (rows), as Fig. 6.4a ranks them."""
    order = np.argsort(-vectors.var(axis=0), kind="stable")
    return vectors[:, order], order


def tsne_with_class_means(per_shot: np.ndarray, labels: np.ndarray, num_classes: int,
                          seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(points (M, 2), means (N, 2))``: one t-SNE of the per-example vectors together with the
    class means, so both live in the same embedding (Fig. 6.4b)."""
    from sklearn.manifold import TSNE

    means = np.stack([per_shot[labels == c].mean(axis=0) for c in range(num_classes)])
    both = np.concatenate([per_shot, means])
    perplexity = float(min(30, max(2, (len(both) - 1) // 3)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca",
                    random_state=seed).fit_transform(both)
    return embedded[:len(per_shot)], embedded[len(per_shot):]


def plot_class_vectors(vectors: np.ndarray, class_names: Sequence[str], path: str,
                       title: str) -> None:
    """Fig. 6.4a: heat map of the class vectors, features sorted by variance across classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered, _ = sort_by_class_variance(vectors)
    fig, ax = plt.subplots(figsize=(8, 0.25 * len(class_names) + 1.5))
    image = ax.imshow(ordered, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("feature (sorted by variance across classes)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tsne(points: np.ndarray, labels: np.ndarray, means: np.ndarray,
              class_names: Sequence[str], path: str, title: str) -> None:
    """Fig. 6.4b: per-example vectors (dots) and class means (labelled crosses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, len(class_names)))
    for c, name in enumerate(class_names):
        ax.scatter(*points[labels == c].T, s=8, color=colors[c], alpha=0.6)
        ax.scatter(*means[c], marker="x", s=60, color=colors[c])
        ax.annotate(name, means[c], fontsize=7, textcoords="offset points", xytext=(4, 4))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(curves: Dict[str, Dict[str, Sequence[dict]]], path: str,
                         title: str, metric: str = "nAP50") -> None:
    """Fig. 6.3: ``metric`` against fine-tuning iterations, one panel per evaluated set (e.g.
    validation, test) and one line per run. ``curves``: run -> {set: [{"iteration", metric}]}
    (``benchmark.learning_curve`` of each run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = sorted({name for per_set in curves.values() for name in per_set})
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.8), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for run, per_set in curves.items():
            points = per_set.get(name, [])
            ax.plot([p["iteration"] for p in points], [p[metric] for p in points], marker="o",
                    markersize=3, label=run)
        ax.set_xlabel("fine-tuning iteration")
        ax.set_ylabel(metric)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
