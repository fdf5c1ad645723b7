"""Saliency propagation (thesis Sec. 8.3, Fig. 8.5, Eq. 8.4): learned message passing from the
box-supervised saliency map of each RoI to its Shape Activation.

Shapes: R RoIs of ``S x S`` locations; ``saliency`` (R, 1, S, S) the per-RoI saliency logits,
``features`` (R, D, S, S) the RoI's appearance features.

1. An encoder (conv-ReLU blocks) maps the saliency to C latent channels ``M~`` (R, C, S, S).
2. A kernel predictor (conv-ReLU blocks, none when it reads the saliency head's trunk features,
   then a ``k x k`` conv to ``C x r x r`` channels, or ``r x r`` channel-agnostic, Table 8.4)
   predicts per location and channel an ``r x r`` kernel from the features; a softmax over the
   ``r x r`` entries makes every kernel sum to 1 (the reference code divides sigmoids by their
   sum instead).
3. Eq. 8.4, iterated ``steps`` times (``max(S, S)`` by default, so a message crosses the whole
   RoI): ``M~_i^{u,v} <- sum_{(p,q) in the r x r window at (u,v)} M~_i^{p,q} K_{i,u,v}^{p-u+r//2,
   q-v+r//2}``, zero outside the RoI; all RoIs and channels at once (a multiply-add per window
   offset on shifted flat views, see :func:`propagate`; no Python loop over RoIs, channels or
   locations).
4. A decoder conv maps the latent channels back to one channel: the Shape Activation logits
   (R, 1, S, S).
"""
from typing import Optional

import torch
from torch import nn
from torch.autograd.function import once_differentiable
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


def _steps(flat: torch.Tensor, taps: torch.Tensor, shifts: list, lo: int, hi: int,
           steps: int, keep: Optional[list] = None) -> torch.Tensor:
    """``steps`` steps of Eq. 8.4 on the padded flat maps ``flat`` (R, C, P) with the window
    entries ``taps`` (R, G, r * r, hi - lo) of the flat positions ``lo:hi``; each step's input
    is appended to ``keep`` when given."""
    size = flat.shape[2]
    for _ in range(steps):
        if keep is not None:
            keep.append(flat)
        inside = flat[:, :, lo + shifts[0]:hi + shifts[0]] * taps[:, :, 0]
        for k in range(1, len(shifts)):
            inside.addcmul_(flat[:, :, lo + shifts[k]:hi + shifts[k]], taps[:, :, k])
        flat = F.pad(inside, (lo, size - hi))
    return flat


class _Propagation(torch.autograd.Function):
    """:func:`_steps` with its backward written out: autograd's own graph of the ``steps * r *
    r`` shifted slices gave every slice's gradient a zero-filled full-size tensor and summed
    them, a large part of ShapeProp's training overhead; here each step's gradient is
    accumulated in place, shift by shift."""

    @staticmethod
    def forward(ctx, flat, taps, shifts, lo, hi, steps):
        keep = []
        out = _steps(flat, taps, shifts, lo, hi, steps, keep)
        ctx.save_for_backward(taps, *keep)
        ctx.shifts, ctx.lo, ctx.hi = shifts, lo, hi
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        taps, *inputs = ctx.saved_tensors
        shifts, lo, hi = ctx.shifts, ctx.lo, ctx.hi
        grad_taps = torch.zeros_like(taps)
        for flat in reversed(inputs):
            grad_inside = grad[:, :, lo:hi]
            grad = torch.zeros_like(flat)
            for k, shift in enumerate(shifts):
                window = slice(lo + shift, hi + shift)
                grad[:, :, window].addcmul_(grad_inside, taps[:, :, k])
                if taps.shape[1] == 1:  # a kernel shared by every channel: their sum
                    grad_taps[:, :, k] += (grad_inside * flat[:, :, window]).sum(
                        dim=1, keepdim=True)
                else:
                    grad_taps[:, :, k].addcmul_(grad_inside, flat[:, :, window])
        return grad, grad_taps, None, None, None, None


def propagate(latent: torch.Tensor, kernels: torch.Tensor, window: int,
              steps: int) -> torch.Tensor:
    """Eq. 8.4 applied ``steps`` times to ``latent`` (R, C, H, W) with ``kernels``
    (R, C or 1, r * r, H * W) (see the module docstring).

    The maps live zero-padded and flattened, (R, C, (H + 2h) (W + 2h)) with h = r // 2, where
    the window offset (dy, dx) is the flat shift ``dy (W + 2h) + dx``: a step is ``r * r``
    multiply-adds of contiguous shifted slices with that offset's kernel entries, which are 0 on
    the padding so that it stays 0. No (R, C, r * r, H * W) window tensor is materialised
    (``F.unfold``), whose memory traffic made the propagation most of ShapeProp's inference;
    the backward is :class:`_Propagation`'s."""
    n, c, h, w = latent.shape
    half = window // 2
    padded_h, padded_w = h + 2 * half, w + 2 * half
    size = padded_h * padded_w
    groups, taps_per_group = kernels.shape[1], window * window
    taps = F.pad(kernels.reshape(n, groups * taps_per_group, h, w),
                 (half, half, half, half)).reshape(n, groups, taps_per_group, size)
    # flat positions whose whole window lies inside the padded map (every unpadded location)
    lo, hi = half * padded_w + half, size - half * padded_w - half
    shifts = [(dy - half) * padded_w + (dx - half) for dy in range(window) for dx in range(window)]
    flat = F.pad(latent, (half, half, half, half)).reshape(n, c, size)
    taps = taps[:, :, :, lo:hi].contiguous()
    if torch.is_grad_enabled() and (flat.requires_grad or taps.requires_grad):
        flat = _Propagation.apply(flat, taps, shifts, lo, hi, steps)
    else:  # nothing to differentiate: keep no step's input
        flat = _steps(flat, taps, shifts, lo, hi, steps)
    return flat.reshape(n, c, padded_h, padded_w)[:, :, half:half + h, half:half + w]


def conv_relu_blocks(in_channels: int, out_channels: int, num_convs: int) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions (padding 1), each followed by a ReLU."""
    layers = []
    for i in range(num_convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3,
                             padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SaliencyPropagation(nn.Module):
    """Saliency (R, 1, S, S) + appearance features (R, D, S, S) -> Shape Activation logits
    (R, 1, S, S), and the latent Shape Activation (R, C, S, S).

    The encoder has ``num_convs`` conv-ReLU layers; the kernel predictor ``kernel_num_convs`` of
    ``conv_dim`` channels (``num_convs`` when None; 0 when the features already are a trunk's
    output, e.g. the saliency head's), then a ``kernel_conv_size`` square convolution."""

    def __init__(self, *, in_channels: int, latent_dim: int = 16, window: int = 3,
                 num_convs: int = 2, conv_dim: int = 64, kernel_num_convs: Optional[int] = None,
                 kernel_conv_size: int = 3, channel_agnostic: bool = False,
                 steps: Optional[int] = None):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"MODEL.SHAPEPROP.WINDOW={window}: expected an odd size >= 1")
        if latent_dim < 1:
            raise ValueError(f"MODEL.SHAPEPROP.LATENT_DIM={latent_dim}: expected >= 1")
        if kernel_conv_size < 1 or kernel_conv_size % 2 == 0:
            raise ValueError(f"MODEL.SHAPEPROP.KERNEL_CONV_SIZE={kernel_conv_size}: expected an "
                             f"odd size >= 1")
        self.window, self.steps, self.latent_dim = window, steps, latent_dim
        self.encoder = conv_relu_blocks(1, latent_dim, num_convs)
        groups = 1 if channel_agnostic else latent_dim
        kernel_num_convs = num_convs if kernel_num_convs is None else kernel_num_convs
        self.kernel_predictor = nn.Sequential(
            conv_relu_blocks(in_channels, conv_dim, kernel_num_convs),
            nn.Conv2d(conv_dim if kernel_num_convs else in_channels, groups * window * window,
                      kernel_conv_size, padding=kernel_conv_size // 2))
        self.decoder = nn.Conv2d(latent_dim, 1, 3, padding=1)

    def forward(self, saliency: torch.Tensor, features: torch.Tensor):
        """(Shape Activation logits (R, 1, S, S), propagated latent features (R, C, S, S))."""
        h, w = saliency.shape[-2:]
        kernels = normalized_kernels(self.kernel_predictor(features), self.window)
        latent = propagate(self.encoder(saliency), kernels, self.window,
                           max(h, w) if self.steps is None else self.steps)
        return self.decoder(latent), latent
