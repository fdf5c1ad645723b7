"""Executed FLOPs of dynamic networks, counted from what ran, with fvcore as the reference.

fvcore's ``FlopCountAnalysis`` counts the static network: one multiply-add is one FLOP
(fvcore's convention, also ours), convolutions, linear layers (the LSTM cell's matmuls
included), normalization and pooling counted, element-wise ops not. For a network whose parts
run partly per input (the costed parts of the dynamic-compute protocol,
:mod:`dynnet_d2.modeling.dynamic`), :class:`ExecutedFlops` traces the static network once per
input size (every part executed, gates included) and subtracts, per image, the share of each
part's variable cost that did not run: ``(1 - executed fraction) x (cost(part) - cost of its
fixed sub-parts)``. A skipped SkipNet block saves ``cost(block) - cost(its shortcut)``, since it
still applies its shortcut (Eq. 2.1).
"""
import logging
from typing import Callable, Dict, Mapping, Sequence, Tuple

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
    """Per-image executed FLOPs of ``model`` whose costed parts are ``costed``: ``{module path
    in model: sub-paths whose cost stays}``, M parts in order.

    ``variable_cost[i] = by_module[part_i] - sum(by_module[part_i + "." + s] for s in fixed_i)``;
    the static count is cached per input shape ``(C, H, W)``.
    """

    def __init__(self, model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor],
                 costed: Mapping[str, Sequence[str]]):
        self.model, self.fn = model, fn
        self.costed = {path: tuple(fixed) for path, fixed in costed.items()}
        self._cache: Dict[Tuple[int, ...], Tuple[float, torch.Tensor]] = {}

    def static(self, shape: Tuple[int, ...], device) -> Tuple[float, torch.Tensor]:
        """(static FLOPs per image, variable cost of each costed part (M,)) for images of
        ``shape``."""
        if shape not in self._cache:
            total, by_module = static_flops(self.model, self.fn,
                                            torch.zeros((1,) + tuple(shape), device=device))
            variable = [by_module.get(path, 0.0)
                        - sum(by_module.get(f"{path}.{sub}", 0.0) for sub in fixed)
                        for path, fixed in self.costed.items()]
            self._cache[shape] = (total, torch.tensor(variable, dtype=torch.float64))
        return self._cache[shape]

    def per_image(self, shape: Tuple[int, ...], executed: torch.Tensor, device) -> torch.Tensor:
        """FLOPs of each image (B,) given the executed fraction ``executed`` (B, M) of each
        costed part."""
        total, variable = self.static(shape, device)
        if not self.costed:
            return torch.full((executed.shape[0],), total, dtype=torch.float64)
        not_run = 1.0 - executed.detach().to("cpu", torch.float64)
        return total - not_run @ variable
