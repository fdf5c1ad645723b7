"""DeepMoE's shallow embedding network and multi-headed sparse gating network (thesis §3.2).

* :class:`ShallowEmbedding`: the image ``(B, C, H, W)`` -> ``L`` stride-2 3x3 convolutions (4 for
  small images, 5 for ImageNet-size ones) -> global average pooling -> a linear layer -> softmax:
  the latent mixture weights ``e`` ``(B, E)`` over ``E`` latent experts.
* :class:`MultiHeadGating`: one head per gated layer, ``G^l(e) = ReLU(W_g^l e)`` (Eq. 3.6),
  ``(B, C_l)``; an exact zero is a channel that is not computed (Eq. 3.3-3.5). ``W_g`` starts
  at 1 plus a little noise, so that every gate starts near 1 (``e`` sums to 1) and the network
  starts as the plain one; the sparsity loss then closes channels.
* :func:`gate_l1_loss` (Eq. 3.8) and the embedding classifier of the embedding loss (Eq. 3.7).
"""
from typing import List, Sequence

import torch
from detectron2.layers import Conv2d, get_norm
from torch import nn
from torch.nn import functional as F


class ShallowEmbedding(nn.Module):
    """``num_layers`` stride-2 3x3 convolutions, pooling, a linear map to ``num_experts``
    logits, softmax: ``(B, C, H, W)`` -> ``e`` ``(B, num_experts)``."""

    def __init__(self, in_channels: int, *, num_layers: int, channels: int, num_experts: int,
                 norm: str = "BN"):
        super().__init__()
        if num_layers < 1 or channels < 1 or num_experts < 1:
            raise ValueError(f"the embedding network needs >= 1 layer, channel and expert; got "
                             f"{num_layers} layers, {channels} channels, {num_experts} experts")
        layers: List[nn.Module] = []
        for i in range(num_layers):
            layers += [Conv2d(in_channels if i == 0 else channels, channels, kernel_size=3,
                              stride=2, padding=1, bias=False, norm=get_norm(norm, channels)),
                       nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.fc(self.convs(x).mean(dim=(2, 3))), dim=1)


class MultiHeadGating(nn.Module):
    """One gate head per gated layer: ``e`` ``(B, E)`` -> ``[ReLU(e W_l^T)]`` ``(B, C_l)``.

    The heads run as one matrix product over their stacked weights, split into the layers'
    gates (views of one ``(B, sum_l C_l)`` tensor): one small kernel call instead of one per
    gated layer, which is what a batch-1 forward pays for."""

    def __init__(self, num_experts: int, channels: Sequence[int], init_noise: float = 0.01):
        super().__init__()
        self.channels = list(channels)
        self.heads = nn.ModuleList(nn.Linear(num_experts, c, bias=False) for c in channels)
        with torch.no_grad():
            for head in self.heads:
                head.weight.copy_(1.0 + init_noise * torch.randn_like(head.weight))

    def forward(self, e: torch.Tensor) -> List[torch.Tensor]:
        weight = torch.cat([head.weight for head in self.heads])
        return list(F.relu(F.linear(e, weight)).split(self.channels, dim=1))


def gate_l1_loss(gates: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eq. 3.8, ``sum_l ||G^l||_1`` per image, averaged over the batch (gates are >= 0)."""
    return torch.stack([g.sum(dim=1) for g in gates], dim=1).sum(dim=1).mean()
