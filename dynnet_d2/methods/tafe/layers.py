"""TAFE-Net's task-aware meta learner and factorised dynamic layers (thesis ch. 5, Eq. 5.2-5.5).

Shapes: task descriptions ``t`` ``(T, D)``; image features ``x`` ``(B, C)``; a dynamic layer i
has a shared weight ``W_s`` ``(m, n)`` (and bias ``(n,)``) and, per task, a generated vector
``W_t`` ``(T, n)``; its output for every image and task at once is

    (x W_s) (.) W_t  =  x (W_s diag(W_t))        (Eq. 5.5: Eq. 5.4's weight applied)   (B, T, n)

so no per-task weight ``W_s diag(W_t)`` is ever formed and no Python loop runs over tasks. A
layer after the first takes ``(B, T, m)`` (each task's features) the same way.

The meta learner (Fig. 5.2): the task-embedding network, an MLP ``t -> e_t`` ``(T, E)`` (ReLU
between its layers), and one weight generator per dynamic layer, ``W_t^i = 1 + g^i(e_t)`` with
``g^i`` linear. The ``1 +`` is ours (the thesis does not say how the generated weights start):
each dynamic layer starts as its shared layer, as FiLM's scales start at 1. With scales near 0
instead, the tiny digits config's embeddings were all but zero and its loss stayed at ln 10 for
its first 200 iterations; with the ``1 +`` it reached 21.7 % top-1 by then (both here, SGD).
"""
from typing import List, Sequence

import torch
from torch import nn


def factorized_linear(x: torch.Tensor, shared: torch.Tensor, task_vectors: torch.Tensor,
                      bias: torch.Tensor = None) -> torch.Tensor:
    """Eq. 5.5 for every task: ``x`` ``(B, m)`` or ``(B, T, m)``, ``shared`` ``(m, n)``,
    ``task_vectors`` ``(T, n)``, ``bias`` ``(n,)`` (shared by the tasks, not scaled) ->
    ``(B, T, n)``, entry ``[b, t]`` = ``x_b (W_s diag(W_t[t])) + bias``."""
    if x.dim() == 2:
        x = x[:, None, :]
    if x.shape[-1] != shared.shape[0] or task_vectors.shape[-1] != shared.shape[1] or (
            x.shape[1] not in (1, task_vectors.shape[0])):
        raise ValueError(f"factorized_linear: features {tuple(x.shape)}, shared weight "
                         f"{tuple(shared.shape)} and task vectors {tuple(task_vectors.shape)} "
                         f"do not fit (B, [T,] m), (m, n), (T, n)")
    out = (x @ shared) * task_vectors[None]
    return out if bias is None else out + bias


class FactorizedLinear(nn.Module):
    """A dynamic fully connected layer: shared ``W_s`` ``(in, out)`` and bias, scaled per task by
    the generated ``W_t`` ``(T, out)`` (:func:`factorized_linear`)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.shared = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.kaiming_uniform_(self.shared.T, a=5 ** 0.5)  # as nn.Linear initialises

    def forward(self, x: torch.Tensor, task_vectors: torch.Tensor) -> torch.Tensor:
        return factorized_linear(x, self.shared, task_vectors, self.bias)


def mlp(dims: Sequence[int]) -> nn.Sequential:
    """Linear layers ``dims[0] -> dims[1] -> ...`` with ReLU between them (not after the last)."""
    layers: List[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class TaskAwareMetaLearner(nn.Module):
    """Task descriptions ``(T, D)`` -> task embeddings ``e`` ``(T, E)`` and the task vectors
    ``W_t^i = 1 + g^i(e)`` ``(T, n_i)`` of every dynamic layer i."""

    def __init__(self, description_dim: int, embedding_dims: Sequence[int],
                 layer_dims: Sequence[int]):
        """
        Args:
            description_dim: D.
            embedding_dims: output sizes of the task-embedding MLP's layers (the last is E).
            layer_dims: output sizes n_i of the dynamic layers, one generator each.
        """
        super().__init__()
        if not embedding_dims:
            raise ValueError("MODEL.TAFE.EMBEDDING_DIMS is empty: expected the task-embedding "
                             "network's layer sizes")
        self.embedding = mlp([description_dim, *embedding_dims])
        self.generators = nn.ModuleList(nn.Linear(embedding_dims[-1], n) for n in layer_dims)

    def forward(self, descriptions: torch.Tensor):
        """-> ``(e (T, E), [W_t^i (T, n_i)])``."""
        embedding = self.embedding(descriptions)
        return embedding, [1.0 + generator(embedding) for generator in self.generators]
