"""Saliency propagation (thesis Sec. 8.3, Fig. 8.5, Eq. 8.4): learned message passing from the
box-supervised saliency map of each RoI to its Shape Activation.

Shapes: R RoIs of ``S x S`` locations; ``saliency`` (R, 1, S, S) the per-RoI saliency logits,
``features`` (R, D, S, S) the RoI's appearance features.

1. An encoder (conv-ReLU blocks) maps the saliency to C latent channels ``M~`` (R, C, S, S).
2. A kernel predictor (conv-ReLU blocks, then a conv to ``C x r x r`` channels, or ``r x r``
   channel-agnostic, Table 8.4) predicts per location and channel an ``r x r`` kernel from the
   features; a softmax over the ``r x r`` entries makes every kernel sum to 1.
3. Eq. 8.4, iterated ``steps`` times (``max(S, S)`` by default, so a message crosses the whole
   RoI): ``M~_i^{u,v} <- sum_{(p,q) in the r x r window at (u,v)} M~_i^{p,q} K_{i,u,v}^{p-u+r//2,
   q-v+r//2}``, zero outside the RoI; all RoIs and channels at once (``F.unfold`` and a
   product-sum, no Python loop over RoIs, channels or locations).
4. A decoder conv maps the latent channels back to one channel: the Shape Activation logits
   (R, 1, S, S).
"""
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F


def normalized_kernels(weights: torch.Tensor, window: int) -> torch.Tensor:
    """``weights`` (R, G * r * r, H, W) -> kernels (R, G, r * r, H * W) that sum to 1 over the
    ``r * r`` window (softmax); G = C channels, or 1 when shared by every channel."""
    r2 = window * window
    if weights.shape[1] % r2:
        raise ValueError(f"{weights.shape[1]} kernel channels are not a multiple of "
                         f"{window} x {window}")
    n, channels, h, w = weights.shape
    return weights.reshape(n, channels // r2, r2, h * w).softmax(dim=2)


def propagate(latent: torch.Tensor, kernels: torch.Tensor, window: int,
              steps: int) -> torch.Tensor:
    """Eq. 8.4 applied ``steps`` times to ``latent`` (R, C, H, W) with ``kernels``
    (R, C or 1, r * r, H * W) (see the module docstring)."""
    n, c, h, w = latent.shape
    for _ in range(steps):
        windows = F.unfold(latent, window, padding=window // 2).reshape(n, c, window * window,
                                                                        h * w)
        latent = (windows * kernels).sum(dim=2).reshape(n, c, h, w)
    return latent


def conv_relu_blocks(in_channels: int, out_channels: int, num_convs: int) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions (padding 1), each followed by a ReLU."""
    layers = []
    for i in range(num_convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3,
                             padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SaliencyPropagation(nn.Module):
    """Saliency (R, 1, S, S) + appearance features (R, D, S, S) -> Shape Activation logits
    (R, 1, S, S), and the latent Shape Activation (R, C, S, S) the mask head is fused with."""

    def __init__(self, *, in_channels: int, latent_dim: int = 16, window: int = 3,
                 num_convs: int = 2, conv_dim: int = 64, channel_agnostic: bool = False,
                 steps: Optional[int] = None):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"MODEL.SHAPEPROP.WINDOW={window}: expected an odd size >= 1")
        if latent_dim < 1:
            raise ValueError(f"MODEL.SHAPEPROP.LATENT_DIM={latent_dim}: expected >= 1")
        self.window, self.steps = window, steps
        self.encoder = conv_relu_blocks(1, latent_dim, num_convs)
        groups = 1 if channel_agnostic else latent_dim
        self.kernel_predictor = nn.Sequential(
            conv_relu_blocks(in_channels, conv_dim, num_convs),
            nn.Conv2d(conv_dim, groups * window * window, 3, padding=1))
        self.decoder = nn.Conv2d(latent_dim, 1, 3, padding=1)

    def forward(self, saliency: torch.Tensor, features: torch.Tensor):
        """(Shape Activation logits (R, 1, S, S), propagated latent features (R, C, S, S))."""
        h, w = saliency.shape[-2:]
        kernels = normalized_kernels(self.kernel_predictor(features), self.window)
        latent = propagate(self.encoder(saliency), kernels, self.window,
                           max(h, w) if self.steps is None else self.steps)
        return self.decoder(latent), latent
