"""Feature reweighting (thesis ch. 6, Eq. 6.1 and Fig. 6.2): a reweighting module M turns one
support example of class i into a class vector w_i in R^m, and the meta features F of the query
become N class-specific features F_i = F (x) w_i (channel-wise product), all N classes at once.

Shapes: support inputs ``(N, C_in, S, S)`` with ``C_in`` = 3 (the image) + 1 (the box mask) + 3
(the object crop), for the forms named in ``MODEL.FSRW.SUPPORT_INPUT``; class vectors ``(N, r)``;
meta features ``(B, m, *spatial)`` (a feature map ``(B, m, H, W)`` or RoI features ``(B, m)``);
class-specific features ``(B, N, m, *spatial)``. ``r = m``, or ``r < m`` when only the first
``r`` channels are reweighted and the rest are shared by every class (Table 6.4, "half").
"""
from typing import Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.modeling import Backbone
from detectron2.utils.registry import Registry
from fvcore.nn.weight_init import c2_msra_fill
from torch import nn

FSRW_REWEIGHTER_REGISTRY = Registry("FSRW_REWEIGHTER")
FSRW_REWEIGHTER_REGISTRY.__doc__ = """
Reweighting modules of FSRW (thesis ch. 6): support inputs ``(N, C_in, S, S)`` -> class vectors
``(N, r)``. Built by :func:`build_reweighter` from ``MODEL.FSRW.REWEIGHTER``; Detectron2 has no
registry for it.
"""

# channels each support input form contributes, in this order (Table 6.6)
SUPPORT_INPUT_CHANNELS = {"image": 3, "mask": 1, "object": 3}
# what the reweighting module's pooled output goes through (MODEL.FSRW.VECTOR_ACTIVATION):
# FSRW's vectors are the pooled output itself, Meta R-CNN's its sigmoid (attention in (0, 1))
VECTOR_ACTIVATIONS = {"none": nn.Identity, "sigmoid": nn.Sigmoid}

#: ``MODEL.FSRW.CLASS_SCORER``: how both detectors score class i on its reweighted features.
CLASS_SCORERS = ("shared", "per_class")


def vector_activation(cfg) -> nn.Module:
    name = cfg.MODEL.FSRW.VECTOR_ACTIVATION
    if name not in VECTOR_ACTIVATIONS:
        raise ValueError(f"MODEL.FSRW.VECTOR_ACTIVATION={name!r}: expected one of "
                         f"{sorted(VECTOR_ACTIVATIONS)}")
    return VECTOR_ACTIVATIONS[name]()


#: ``MODEL.FSRW.REWEIGHTER_INIT``: how the reweighting module's last layer starts.
REWEIGHTER_INITS = ("he", "identity")


def init_last_layer(layer: nn.Conv2d, how: str) -> None:
    """Initialise the layer giving the class vectors: "he" (MSRA, bias 0, as Darknet's) or
    "identity" (weights N(0, 0.01), bias 1: every class vector starts near all-ones, so Eq. 6.1
    starts as the identity and the detector learns as a plain one while the vectors become
    class-specific); ``ValueError`` naming ``MODEL.FSRW.REWEIGHTER_INIT`` otherwise."""
    if how not in REWEIGHTER_INITS:
        raise ValueError(f"MODEL.FSRW.REWEIGHTER_INIT={how!r}: expected one of "
                         f"{list(REWEIGHTER_INITS)}")
    if how == "he":
        c2_msra_fill(layer)
    else:
        nn.init.normal_(layer.weight, std=0.01)
        nn.init.constant_(layer.bias, 1.0)


def check_class_scorer(name: str) -> None:
    """``ValueError`` naming ``MODEL.FSRW.CLASS_SCORER`` unless ``name`` is one of
    :data:`CLASS_SCORERS`."""
    if name not in CLASS_SCORERS:
        raise ValueError(f"MODEL.FSRW.CLASS_SCORER={name!r}: expected one of "
                         f"{list(CLASS_SCORERS)}")


def support_channels(forms: Sequence[str]) -> int:
    """Input channels of the reweighting module for the support forms ``forms``."""
    unknown = [f for f in forms if f not in SUPPORT_INPUT_CHANNELS]
    if unknown or "image" not in forms or len(set(forms)) != len(forms):
        raise ValueError(f"MODEL.FSRW.SUPPORT_INPUT={tuple(forms)}: expected 'image' and any of "
                         f"'mask', 'object', each once (known: {tuple(SUPPORT_INPUT_CHANNELS)})")
    return sum(SUPPORT_INPUT_CHANNELS[f] for f in forms)


def reweight(features: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Eq. 6.1 for every class at once: ``features`` ``(B, m, *spatial)`` and ``vectors``
    ``(N, r)``, ``r <= m`` -> ``(B, N, m, *spatial)`` where channel ``c < r`` of class ``i`` is
    ``features[:, c] * vectors[i, c]`` and channels ``c >= r`` are ``features[:, c]`` for every
    class."""
    if features.dim() < 2 or vectors.dim() != 2 or vectors.shape[1] > features.shape[1]:
        raise ValueError(f"reweight: features {tuple(features.shape)} (B, m, ...) and class "
                         f"vectors {tuple(vectors.shape)} (N, r <= m) do not fit")
    batch, channels, *spatial = features.shape
    classes, reweighted = vectors.shape
    scale = vectors.view(1, classes, reweighted, *([1] * len(spatial)))
    scaled = features[:, None, :reweighted] * scale
    if reweighted == channels:
        return scaled
    shared = features[:, None, reweighted:].expand(batch, classes, channels - reweighted,
                                                    *spatial)
    return torch.cat([scaled, shared], dim=2)


@FSRW_REWEIGHTER_REGISTRY.register()
class LightReweighter(nn.Module):
    """The light CNN of FSRW's reweighting module: per entry of ``conv_dims`` a 3x3 convolution,
    ReLU and 2x2 max pooling, then a 3x3 convolution to ``out_channels`` and global max pooling
    (as the reference's reweighting network ends). He (MSRA) initialisation, as Darknet's (with
    PyTorch's default the class vectors start near 0.03 and nearly equal across classes, so the
    class scores of the reweighted features start equal); the last convolution's is
    ``last_layer_init``."""

    @configurable
    def __init__(self, *, in_channels: int, out_channels: int, conv_dims: Sequence[int],
                 activation: Optional[nn.Module] = None, last_layer_init: str = "he"):
        """
        Args:
            in_channels: channels of a support input (see :func:`support_channels`).
            out_channels: length r of a class vector: the reweighted feature's channels (or the
                part of them that is reweighted).
            conv_dims: channels of the convolution-ReLU-pool layers before the last one.
            activation: applied to the pooled output (None: none).
            last_layer_init: the last convolution's initialisation (:func:`init_last_layer`).
        """
        super().__init__()
        layers, channels = [], in_channels
        for dim in conv_dims:
            layers += [nn.Conv2d(channels, dim, 3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            channels = dim
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)
        for layer in self.layers[:-1]:
            if isinstance(layer, nn.Conv2d):
                c2_msra_fill(layer)
        init_last_layer(self.layers[-1], last_layer_init)
        self.out_channels = out_channels
        self.activation = activation or nn.Identity()

    @classmethod
    def from_config(cls, cfg, out_channels: int, backbone: Optional[Backbone] = None):
        return {"in_channels": support_channels(cfg.MODEL.FSRW.SUPPORT_INPUT),
                "out_channels": out_channels, "conv_dims": tuple(cfg.MODEL.FSRW.REWEIGHTER_DIMS),
                "activation": vector_activation(cfg),
                "last_layer_init": cfg.MODEL.FSRW.REWEIGHTER_INIT}

    def forward(self, supports: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, S, S)`` -> class vectors ``(N, out_channels)``."""
        return self.activation(torch.amax(self.layers(supports), dim=(2, 3)))


@FSRW_REWEIGHTER_REGISTRY.register()
class BackboneReweighter(nn.Module):
    """The detector's own backbone as the reweighting module, its weights shared with the
    detector (the thesis' supplementary compares sharing them): a learned 1x1 convolution from
    the support's ``C_in`` channels to the backbone's 3 input channels (initialised to pass the
    image through and ignore the other channels: together with the backbone's first
    convolution, a stem for ``C_in`` channels), the backbone's coarsest level, a 1x1 convolution
    to ``out_channels`` and global max pooling. The backbone is not a submodule (the detector
    owns it; checkpoints hold it once)."""

    @configurable
    def __init__(self, *, in_channels: int, out_channels: int, backbone: Backbone,
                 activation: Optional[nn.Module] = None, last_layer_init: str = "he"):
        """
        Args:
            in_channels: channels of a support input (see :func:`support_channels`).
            out_channels: length r of a class vector.
            backbone: the detector's backbone, taking 3-channel images.
            activation: applied to the pooled output (None: none).
            last_layer_init: the projection's initialisation (:func:`init_last_layer`).
        """
        super().__init__()
        self.adapter = nn.Conv2d(in_channels, 3, 1)
        with torch.no_grad():
            self.adapter.weight.zero_()
            self.adapter.weight[:, :3, 0, 0] = torch.eye(3)
            self.adapter.bias.zero_()
        shapes = backbone.output_shape()
        self.level = max(shapes, key=lambda name: shapes[name].stride)
        self.project = nn.Conv2d(shapes[self.level].channels, out_channels, 1)
        init_last_layer(self.project, last_layer_init)
        self._shared = (backbone,)  # a tuple: not registered as a submodule
        self.out_channels = out_channels
        self.activation = activation or nn.Identity()

    @classmethod
    def from_config(cls, cfg, out_channels: int, backbone: Optional[Backbone] = None):
        if backbone is None:
            raise ValueError("MODEL.FSRW.REWEIGHTER='BackboneReweighter' shares the detector's "
                             "backbone: build it with the detector (build_reweighter(cfg, r, "
                             "backbone))")
        divisibility = backbone.size_divisibility
        if divisibility and cfg.MODEL.FSRW.SUPPORT_SIZE % divisibility:
            raise ValueError(f"MODEL.FSRW.SUPPORT_SIZE={cfg.MODEL.FSRW.SUPPORT_SIZE}: the "
                             f"backbone {cfg.MODEL.BACKBONE.NAME} needs a multiple of "
                             f"{divisibility}")
        return {"in_channels": support_channels(cfg.MODEL.FSRW.SUPPORT_INPUT),
                "out_channels": out_channels, "backbone": backbone,
                "activation": vector_activation(cfg),
                "last_layer_init": cfg.MODEL.FSRW.REWEIGHTER_INIT}

    def forward(self, supports: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, S, S)`` -> class vectors ``(N, out_channels)``."""
        features = self._shared[0](self.adapter(supports))[self.level]
        return self.activation(torch.amax(self.project(features), dim=(2, 3)))


def build_reweighter(cfg, out_channels: int, backbone: Optional[Backbone] = None) -> nn.Module:
    """The reweighting module ``MODEL.FSRW.REWEIGHTER`` giving vectors of ``out_channels``
    (``backbone``: the detector's, for reweighting modules that share it)."""
    return FSRW_REWEIGHTER_REGISTRY.get(cfg.MODEL.FSRW.REWEIGHTER)(cfg, out_channels, backbone)
