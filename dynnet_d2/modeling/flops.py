"""Executed FLOPs of dynamic networks, counted from what ran, with fvcore as the reference.

fvcore's ``FlopCountAnalysis`` counts the static network: one multiply-add is one FLOP
(fvcore's convention, also ours), convolutions, linear layers (the LSTM cell's matmuls
included), normalization and pooling counted, element-wise ops not. For a network whose parts
may be skipped per input, :class:`ExecutedFlops` traces the static network once per input size
(every block executed, gates included) and subtracts, per image, what each skipped block would
have cost: ``cost(block) - cost(its shortcut)``, since a skipped block still applies its shortcut
(Eq. 2.1).
"""
import logging
from typing import Callable, Dict, Sequence, Tuple

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn


class _TensorForward(nn.Module):
    """``fn(images)`` as a module, so fvcore can trace it; the model is a child named ``model``."""

    def __init__(self, model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model = model
        self._fn = fn

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._fn(images)


def static_flops(model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor],
                 images: torch.Tensor) -> Tuple[float, Dict[str, float]]:
    """fvcore's total FLOPs of ``fn(images)`` per image and ``{module path in model: FLOPs}``."""
    analysis = FlopCountAnalysis(_TensorForward(model, fn), (images,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    batch = images.shape[0]
    by_module = {name[len("model."):]: count / batch
                 for name, count in analysis.by_module().items() if name.startswith("model.")}
    return analysis.total() / batch, by_module


class ExecutedFlops:
    """Per-image executed FLOPs of ``model`` whose skippable blocks are ``block_paths``.

    ``skipped_cost[i] = by_module[block_i] - by_module[block_i + ".shortcut"]``; the static
    count is cached per input shape ``(C, H, W)``.
    """

    def __init__(self, model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor],
                 block_paths: Sequence[str]):
        self.model, self.fn, self.block_paths = model, fn, list(block_paths)
        self._cache: Dict[Tuple[int, ...], Tuple[float, torch.Tensor]] = {}

    def static(self, shape: Tuple[int, ...], device) -> Tuple[float, torch.Tensor]:
        """(static FLOPs per image, saving of each skippable block (N,)) for images of
        ``shape``."""
        if shape not in self._cache:
            total, by_module = static_flops(self.model, self.fn,
                                            torch.zeros((1,) + tuple(shape), device=device))
            savings = [by_module.get(p, 0.0) - by_module.get(p + ".shortcut", 0.0)
                       for p in self.block_paths]
            self._cache[shape] = (total, torch.tensor(savings, dtype=torch.float64))
        return self._cache[shape]

    def per_image(self, shape: Tuple[int, ...], executed: torch.Tensor, device) -> torch.Tensor:
        """FLOPs of each image (B,) given the 0/1 decisions ``executed`` (B, N)."""
        total, savings = self.static(shape, device)
        if not self.block_paths:
            return torch.full((executed.shape[0],), total, dtype=torch.float64)
        skipped = 1.0 - executed.detach().to("cpu", torch.float64)
        return total - skipped @ savings
