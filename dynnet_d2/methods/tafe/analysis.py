"""Fig. 5.3 analogue: a 2-D view (t-SNE) of the task-aware feature embeddings of the same images
under different tasks.

For a trained ``TAFEHead``, the images of a few classes and a few tasks (descriptions), each
(image, task) pair's embedding ``TAFE(x; t)`` ``(d,)`` (:meth:`TAFEHead.embeddings`) is one
point; scikit-learn's t-SNE maps all of them to 2-D at once, and the plot colours a point by its
image's class and marks it by its task: if the embedding is task-aware, the same images spread
differently under each task, and the images of task t's class stand apart under t.
"""
from pathlib import Path
from typing import Sequence

import numpy as np
import torch


@torch.no_grad()
def task_embedding_points(head, features: torch.Tensor, tasks: Sequence[int]) -> np.ndarray:
    """``(len(tasks) * B, d)``: the embeddings of the images ``features`` ``(B, C)`` under each
    of ``tasks``, task-major."""
    was_training = head.training
    head.eval()
    try:
        tafe, _ = head.embeddings(features)
    finally:
        head.train(was_training)
    return torch.cat([tafe[:, t] for t in tasks]).numpy()


def plot_task_embeddings(head, features: torch.Tensor, labels: torch.Tensor,
                         tasks: Sequence[int], class_names: Sequence[str], path: Path,
                         seed: int = 0) -> Path:
    """Write the t-SNE view of :func:`task_embedding_points` to ``path`` (PNG); one panel per
    task, the same 2-D map, points coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    points = task_embedding_points(head, features, tasks)
    with threadpool_limits(1):  # a few hundred points: OpenMP threads only contend
        mapped = TSNE(n_components=2, random_state=seed, init="pca",
                      perplexity=min(30.0, len(points) / 4)).fit_transform(points)
    per_task = np.split(mapped, len(tasks))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 4), sharex=True,
                             sharey=True)
    for ax, task, xy in zip(np.atleast_1d(axes), tasks, per_task):
        for c in sorted(set(labels.tolist())):
            keep = (labels == c).numpy()
            ax.scatter(xy[keep, 0], xy[keep, 1], s=6, label=class_names[c])
        ax.set_title(f"task: {class_names[task]}")
        ax.set_xticks([])
        ax.set_yticks([])
    np.atleast_1d(axes)[-1].legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
