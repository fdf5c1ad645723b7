"""The dynamic-compute protocol: a backbone (or any module) that executes part of itself per
input implements :class:`DynamicCompute`, and the shared layers read it, never its attributes.

* :meth:`~DynamicCompute.costed_modules`: ``{path under the module: paths under that path whose
  cost does not depend on the input}``, the M parts whose work varies per input, in a fixed
  order (SkipNet: every gated block, whose shortcut always runs; DeepMoE: every gated
  convolution);
* :attr:`~DynamicCompute.executed_fraction`: after each forward, ``(B, M)`` in [0, 1], the
  fraction of each costed part's variable work that ran for each input (SkipNet's 0/1 block
  decisions; fractional for channel gating);
* :meth:`~DynamicCompute.losses`: extra losses from the per-image task loss ``(B,)`` and the
  images' targets (SkipNet's REINFORCE term; DeepMoE's gate sparsity and embedding
  classification), ``{}`` by default;
* :meth:`~DynamicCompute.leaves_parameters_unused`: whether a training step may give some
  parameters no gradient (DDP must then look for unused parameters);
* :meth:`~DynamicCompute.static_mode`: a context in which every part runs in full (fvcore's
  static count, and the reference for timings); by default it sets ``static`` True, which the
  module's forward reads;
* :attr:`~DynamicCompute.metric_prefix`: the prefix of the training metrics logged for it
  (``<prefix>/executed_fraction``).

Executed FLOPs are counted from :attr:`executed_fraction` (:mod:`dynnet_d2.modeling.flops`).
"""
import abc
import contextlib
from typing import Dict, Iterator, Optional, Sequence

import torch
from torch import nn


class DynamicCompute(abc.ABC):
    """Mix-in of an ``nn.Module`` that executes part of itself per input (see the module
    docstring)."""

    #: Prefix of the training metrics of this module, e.g. ``"skipnet"``.
    metric_prefix: str = "dynamic"
    #: ``(B, M)`` executed fraction of each costed part in the last forward (None before one).
    executed_fraction: Optional[torch.Tensor] = None

    @abc.abstractmethod
    def costed_modules(self) -> Dict[str, Sequence[str]]:
        """``{module path: sub-paths whose cost stays}`` of the M costed parts, in order."""

    def losses(self, per_image_loss: Optional[torch.Tensor],
               targets: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Extra training losses from the per-image task loss ``(B,)`` of the last forward (None
        where the task has none per image: detection, segmentation) and the images' ``targets``:
        ``(B,)`` class indices (image classification) or ``(B, K)`` 0/1 presence of each class
        (detection, segmentation); None when the caller has none."""
        return {}

    def leaves_parameters_unused(self) -> bool:
        """Whether a training step may leave some parameters without a gradient."""
        return False

    #: True inside :meth:`static_mode` (the default implementation): every part runs in full.
    static: bool = False

    @contextlib.contextmanager
    def static_mode(self) -> Iterator[None]:
        """A context inside which every part runs in full; by default it sets :attr:`static`,
        which the module's forward reads."""
        static, self.static = self.static, True
        try:
            yield
        finally:
            self.static = static


def dynamic_parts(model: nn.Module) -> Dict[str, DynamicCompute]:
    """``{module path: module}`` of every :class:`DynamicCompute` module in ``model``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, DynamicCompute)}


def leaves_parameters_unused(model: nn.Module) -> bool:
    """Whether a training step of ``model`` may give some parameters no gradient (a dynamic part
    says so), so that DDP must look for unused parameters."""
    return any(m.leaves_parameters_unused() for m in dynamic_parts(model).values())
