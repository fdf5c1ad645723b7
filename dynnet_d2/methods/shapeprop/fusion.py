"""Integrating the shape representation (thesis Sec. 8.3, "Integrating Shape Representation"):
the Shape Activation is concatenated with the RoI features the mask head reads.

As in the reference code, the decoded Shape Activation logits (R, 1, S, S) go through a ReLU,
are divided by their per-RoI maximum (so every RoI's prior lies in [0, 1] whatever its scale),
and are re-encoded by convolutions to F channels (R, F, S, S) before the concatenation. (Our
first version concatenated the propagation's latent channels instead; ``MODEL.SHAPEPROP.FUSION
"latent"`` keeps it.)
"""
import torch
from torch import nn
from torch.nn import functional as F

from .propagation import conv_relu_blocks

FUSIONS = ("activation", "latent")


class ShapeActivationEncoder(nn.Module):
    """Shape Activation logits (R, 1, S, S) -> ReLU -> / per-RoI max -> ``num_convs`` 3x3
    convolutions of ``conv_dim`` channels with ReLUs between them -> (R, conv_dim, S, S)."""

    def __init__(self, *, num_convs: int = 2, conv_dim: int = 16, eps: float = 1e-5):
        super().__init__()
        if num_convs < 1 or conv_dim < 1:
            raise ValueError(f"MODEL.SHAPEPROP.FUSION_NUM_CONV={num_convs}, FUSION_CONV_DIM="
                             f"{conv_dim}: expected >= 1 each")
        self.convs = nn.Sequential(conv_relu_blocks(1, conv_dim, num_convs - 1),
                                   nn.Conv2d(1 if num_convs == 1 else conv_dim, conv_dim, 3,
                                             padding=1))
        self.out_channels, self.eps = conv_dim, eps

    @staticmethod
    def normalize(shape_logits: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        """ReLU, then each RoI's map divided by its maximum (+ ``eps``): (R, 1, S, S)."""
        positive = F.relu(shape_logits)
        return positive / (positive.amax(dim=(2, 3), keepdim=True) + eps)

    def forward(self, shape_logits: torch.Tensor) -> torch.Tensor:
        return self.convs(self.normalize(shape_logits, self.eps))
