"""Serving an IDK cascade on batches, with measured throughput and latency (thesis Sec. 4.1).

Inputs arrive in order and stage 0 runs on every one, ``batch_size`` at a time. The inputs an
IDK classifier passes on wait in the next stage's queue, and that stage runs whenever its queue
holds a full batch, or, with a deadline (``max_wait_ms`` > 0, ``CASCADE.MAX_WAIT_MS``), on the
inputs it holds once its oldest one has waited that long; the deadlines are checked after every
stage run. What is left is flushed, stage by stage, after the last input. So every stage runs on
at most ``batch_size`` of exactly the inputs that reached it, and the answers are scattered back
to the input order. The latency of an input runs from the start of its stage-0 batch to its
answer. ``clock`` (seconds) is injectable for tests.
"""
import dataclasses
import time
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from .stages import Stage


@dataclasses.dataclass
class CascadeRun:
    """What :func:`serve` returns, in input order: ``predictions`` (n,), ``probs`` (n, K),
    ``exits`` (n,) the answering stage, ``costs`` (n,) the summed stage costs, ``latency_s``
    (n,), ``wall_s`` the wall time of the whole run, and ``batch_sizes`` the size of every batch
    each stage ran on."""

    predictions: torch.Tensor
    probs: torch.Tensor
    exits: torch.Tensor
    costs: torch.Tensor
    latency_s: np.ndarray
    wall_s: float
    batch_sizes: List[List[int]]

    def summary(self, labels: torch.Tensor, num_stages: int) -> Dict:
        """Accuracy, IDK rate per level, mean cost, throughput and latency percentiles."""
        n = len(labels)
        return {
            "accuracy": float((self.predictions == labels).double().mean()),
            "idk_rate": [float((self.exits > j).double().mean()) for j in range(num_stages - 1)],
            "mean_cost": float(self.costs.mean()),
            "inputs_per_s": n / self.wall_s,
            "latency_ms": {f"p{q}": float(np.percentile(self.latency_s, q) * 1e3)
                           for q in (50, 90, 99)},
            "num_inputs": n,
        }


def serve(stages: Sequence[Stage], classifiers: Sequence[nn.Module], inputs: List[Dict],
          batch_size: int, *, max_wait_ms: float = 0.0,
          clock: Callable[[], float] = time.perf_counter) -> CascadeRun:
    """Run the cascade of ``stages`` and ``classifiers`` (N - 1, after all but the last stage)
    on ``inputs``; a later stage's partial batch is released once its oldest input has waited
    ``max_wait_ms`` (0 = only full batches; see the module docstring)."""
    if len(classifiers) != len(stages) - 1:
        raise ValueError(f"{len(classifiers)} IDK classifiers for {len(stages)} stages")
    if batch_size < 1:
        raise ValueError(f"CASCADE.BATCH_SIZE={batch_size}: expected >= 1")
    if max_wait_ms < 0:
        raise ValueError(f"CASCADE.MAX_WAIT_MS={max_wait_ms}: expected >= 0 (0 = no deadline)")
    n = len(inputs)
    probs = [None] * n
    exits = torch.zeros(n, dtype=torch.long)
    costs = torch.zeros(n, dtype=torch.float64)
    started, queued, finished = np.zeros(n), np.zeros(n), np.zeros(n)
    queues: List[List[int]] = [[] for _ in stages]
    batch_sizes: List[List[int]] = [[] for _ in stages]

    def run(j: int, indices: List[int]) -> None:
        batch_sizes[j].append(len(indices))
        stage_probs, stage_costs = stages[j].predict([inputs[i] for i in indices])
        index = torch.as_tensor(indices)
        costs[index] += stage_costs
        if j + 1 < len(stages):
            with torch.no_grad():
                idk = (classifiers[j](stage_probs) > 0.5).tolist()
        else:
            idk = [False] * len(indices)
        now = clock()
        for k, (i, passed) in enumerate(zip(indices, idk)):
            if passed:
                queues[j + 1].append(i)
                queued[i] = now
            else:
                probs[i], exits[i], finished[i] = stage_probs[k], j, now

    def due(j: int, flush: bool) -> bool:
        """Whether stage ``j`` runs on (up to a batch of) its queue now."""
        queue = queues[j]
        if not queue:
            return False
        if flush or len(queue) >= batch_size:
            return True
        return max_wait_ms > 0 and (clock() - queued[queue[0]]) * 1e3 >= max_wait_ms

    def drain(flush: bool) -> None:
        """Run every later stage, in order, while its queue is due (all of it with ``flush``)."""
        for j in range(1, len(stages)):
            while due(j, flush):
                run(j, queues[j][:batch_size])
                del queues[j][:batch_size]

    start = clock()
    for first in range(0, n, batch_size):
        batch = list(range(first, min(first + batch_size, n)))
        started[batch] = clock()
        run(0, batch)
        drain(flush=False)  # full (or overdue) batches only while inputs keep arriving
    drain(flush=True)  # then whatever is left
    wall = clock() - start
    stacked = torch.stack(probs)
    return CascadeRun(stacked.argmax(dim=1), stacked, exits, costs, finished - started, wall,
                      batch_sizes)
