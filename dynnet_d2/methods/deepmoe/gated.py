"""DeepMoE backbones (thesis ch. 3): a residual backbone whose blocks' inner channels are selected
and re-weighted per input by gates computed before the base network runs.

A gate ``g`` ``(B, C)`` on a convolution's output channels scales them (Eq. 3.3-3.5; the gate
multiplies the channels after the ReLU, which is the same since ``g >= 0``); the next
convolution reads them. Which convolutions are gated (Fig. 3.2), on Detectron2's blocks:

==================  ====================================  =====================================
block               gated outputs                          costed convolutions (fraction run)
==================  ====================================  =====================================
``BasicBlock``      ``conv1`` (3x3)                        ``conv1`` (a), ``conv2`` (a)
bottleneck ``A``    ``conv2`` (3x3)                        ``conv2`` (b), ``conv3`` (b)
bottleneck ``B``    ``conv1`` (1x1) and ``conv2`` (3x3)    ``conv1`` (a), ``conv2`` (a b),
                                                           ``conv3`` (b)
==================  ====================================  =====================================

with ``a``, ``b`` the fractions of open channels of the first and second gate. Execution
(``MODEL.DEEPMOE.INFERENCE``):

* ``"mask"`` (the reference, and always in training): every convolution in full, the channels
  multiplied by the gates (zeros included);
* ``"slice"`` (evaluation): a gated convolution computes only its open output channels (its
  weight and bias, with the evaluation-mode normalization folded in, sliced to them) and the
  next one reads only those input channels (its weight sliced along the input axis), as smaller
  dense convolutions. At batch 1
  the open channels are the image's; at batch > 1 ``MODEL.DEEPMOE.BATCH_EXECUTION`` picks
  ``"union"`` (the channels open for any image of the batch, one convolution) or ``"group"``
  (the images grouped by their pattern of open channels, one convolution per group).

The executed fraction of the dynamic-compute protocol is per costed convolution and image what
ran: 1 in ``"mask"`` mode, the fractions above in ``"slice"`` mode (of the union under
``"union"``); in training, what ``"slice"`` evaluation of the same images would run. The
normalization of a convolution sliced only along its inputs still runs in full; it is counted
as a fixed part.

The forward of each block follows Detectron2's ``BasicBlock.forward`` / ``BottleneckBlock.forward``
(detectron2 0.7.2) with the gates in between; ``tests/methods/deepmoe`` pins that a block whose
gates are all 1 gives the upstream block's output.
"""
import contextlib
import itertools
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.resnet import BasicBlock, BottleneckBlock
from torch import nn
from torch.nn import functional as F

from ...config import config_value
from ...modeling.dynamic import DynamicCompute
from ...modeling.meta_arch import meta_architecture_needs
from ...modeling.residual import WrappedBackbone, residual_blocks
from .embedding import MultiHeadGating, ShallowEmbedding, gate_l1_loss

INFERENCE_MODES = ("slice", "mask")
BATCH_EXECUTIONS = ("union", "group")
BOTTLENECK_VARIANTS = ("A", "B")
#: Which convolutions of a block are gated (their outputs), per block kind.
GATED_OUTPUTS = {"basic": ("conv1",), "A": ("conv2",), "B": ("conv1", "conv2")}
#: The convolutions of a block in forward order, and which follow a ReLU.
CONVS = {"basic": ("conv1", "conv2"), "A": ("conv1", "conv2", "conv3"),
         "B": ("conv1", "conv2", "conv3")}


def _costed_convolutions(kind: str) -> Dict[str, Tuple[Tuple[str, ...], Optional[str]]]:
    """``{conv name: (fixed sub-parts, the gated conv whose outputs are its inputs or None)}``
    of the costed convolutions of a ``kind`` block, in forward order: a gated one (its
    normalization scales with its outputs) and one reading a gated one (its normalization runs
    in full)."""
    gated, convs, costed = GATED_OUTPUTS[kind], CONVS[kind], {}
    for i, name in enumerate(convs):
        input_gate = convs[i - 1] if i > 0 and convs[i - 1] in gated else None
        if name in gated:
            costed[name] = ((), input_gate)
        elif input_gate is not None:
            costed[name] = (("norm",), input_gate)
    return costed


#: :func:`_costed_convolutions` of every block kind.
COSTED = {kind: _costed_convolutions(kind) for kind in GATED_OUTPUTS}


def folded(conv: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Detectron2 ``Conv2d`` ``conv`` with its evaluation-mode normalization (BatchNorm, FrozenBN)
    folded in: ``(weight, bias)`` of one affine convolution computing ``norm(conv(x))``."""
    weight = conv.weight
    bias = conv.bias if conv.bias is not None else weight.new_zeros(weight.shape[0])
    norm = conv.norm
    if norm is None:
        return weight, bias
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    return weight * scale.view(-1, 1, 1, 1), norm.bias - norm.running_mean * scale + bias * scale


def _conv_slice(weight: torch.Tensor, bias: torch.Tensor, conv: nn.Module, x: torch.Tensor,
                inputs: Optional[torch.Tensor], outputs: Optional[torch.Tensor]) -> torch.Tensor:
    """The convolution ``(weight, bias)`` (``conv``'s, normalization folded in) computing only
    the output channels ``outputs`` from the input channels ``inputs`` (index tensors; None =
    all) of ``x``, whose channels are already only ``inputs``."""
    if outputs is not None:
        weight, bias = weight.index_select(0, outputs), bias.index_select(0, outputs)
    if inputs is not None:
        weight = weight.index_select(1, inputs)
    if weight.shape[0] == 0 or weight.shape[1] == 0:  # nothing open: the input contributes 0
        size = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in zip(
            x.shape[2:], conv.padding, conv.dilation, conv.kernel_size, conv.stride)]
        return bias.view(1, -1, 1, 1).expand(x.shape[0], -1, *size).contiguous()
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class GateRun:
    """One forward's gates ``[(B, C_l)]`` in gated-layer order and how the blocks execute;
    ``weights_generation`` changes whenever a weight or statistic of the base network changed
    since the last forward (the blocks' folded convolutions are then recomputed)."""

    def __init__(self, gates: List[torch.Tensor], mode: str, batch_execution: str,
                 weights_generation: int = 0):
        self.gates, self.mode, self.batch_execution = gates, mode, batch_execution
        self.weights_generation = weights_generation
        # per costed convolution, in order: a float (the same for every image) or (B,)
        self.fractions: List[Union[float, torch.Tensor]] = []

    def executed_fraction(self, batch: int, device) -> torch.Tensor:
        """``(B, M)`` from :attr:`fractions`, built once (no tensor per block when every image
        ran the same)."""
        if all(isinstance(f, float) for f in self.fractions):
            return torch.tensor(self.fractions, device=device).expand(batch, -1)
        return torch.stack([f if torch.is_tensor(f) else torch.full((batch,), f, device=device)
                            for f in self.fractions], dim=1)


class MoEBlock(nn.Module):
    """A Detectron2 residual block with gated inner channels (the module docstring's table).

    ``gate_indices``: the indices in the backbone's gate list of this block's gates, in the
    order of ``GATED_OUTPUTS[kind]``."""

    def __init__(self, block: nn.Module, kind: str, gate_indices: Sequence[int],
                 owner: "DeepMoEBackbone"):
        super().__init__()
        self.block, self.kind, self.gate_indices = block, kind, tuple(gate_indices)
        self._owner = [owner]  # a list, so the owner is not registered as a submodule
        self._folded_cache: Dict[str, tuple] = {}

    def gated_channels(self) -> List[int]:
        return [getattr(self.block, name).out_channels for name in GATED_OUTPUTS[self.kind]]

    def costed(self) -> Dict[str, Tuple[str, ...]]:
        """``{conv name: fixed sub-parts}`` of this block's costed convolutions, in order."""
        return {name: fixed for name, (fixed, _) in COSTED[self.kind].items()}

    def conv_fractions(self, open_fraction: Dict[str, Union[float, torch.Tensor]]
                       ) -> List[Union[float, torch.Tensor]]:
        """The executed fraction of each costed convolution (:meth:`costed` order) from the
        fraction of open channels of each gate (``{gated conv name: float or (B,)}``)."""
        fractions = []
        for name, (_, input_gate) in COSTED[self.kind].items():
            fraction = open_fraction.get(name, 1.0)
            if input_gate is not None:
                fraction = fraction * open_fraction[input_gate]
            fractions.append(fraction)
        return fractions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        run = self._owner[0].run
        gates = {name: run.gates[i] for name, i in zip(GATED_OUTPUTS[self.kind],
                                                       self.gate_indices)}
        if run.mode == "mask":
            out = self._masked(x, gates)
            opened = {n: 1.0 for n in gates}
        elif x.shape[0] == 1 or run.batch_execution == "union":
            out, opened = self._sliced(x, gates)
        else:
            out, opened = self._grouped(x, gates)
        run.fractions.extend(self.conv_fractions(opened))
        shortcut = x if self.block.shortcut is None else self.block.shortcut(x)
        return F.relu_(out + shortcut)

    def _masked(self, x: torch.Tensor, gates: Dict[str, torch.Tensor]) -> torch.Tensor:
        last = CONVS[self.kind][-1]
        for name in CONVS[self.kind]:
            x = getattr(self.block, name)(x)
            if name != last:
                x = F.relu(x)
            if name in gates:
                x = x * gates[name][:, :, None, None]
        return x

    def _sliced(self, x: torch.Tensor, gates: Dict[str, torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
        """The channels open for any image of the batch, one smaller convolution each; returns
        the output and the fraction of open channels per gate (the same for every image)."""
        open_ = {n: (g > 0).any(0).nonzero().squeeze(1) for n, g in gates.items()}
        last, inputs = CONVS[self.kind][-1], None
        for name in CONVS[self.kind]:
            outputs = open_.get(name)
            conv = getattr(self.block, name)
            x = _conv_slice(*self._folded(name, conv), conv, x, inputs, outputs)
            if name != last:
                x = F.relu(x)
            if outputs is not None:
                x = x * gates[name].index_select(1, outputs)[:, :, None, None]
            inputs = outputs
        return x, {n: len(o) / gates[n].shape[1] for n, o in open_.items()}

    def _folded(self, name: str, conv: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
        """:func:`folded` of the block's ``name`` convolution, cached until the base network's
        weights change (:attr:`GateRun.weights_generation`)."""
        generation = self._owner[0].run.weights_generation
        cached = self._folded_cache.get(name)
        if cached is None or cached[0] != generation:
            with torch.no_grad():
                cached = (generation, *folded(conv))
            self._folded_cache[name] = cached
        return cached[1], cached[2]

    def _grouped(self, x: torch.Tensor, gates: Dict[str, torch.Tensor]
                 ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The images grouped by their pattern of open channels, :meth:`_sliced` per group."""
        pattern = torch.cat([g > 0 for g in gates.values()], dim=1)
        groups: Dict[bytes, List[int]] = {}
        for i, row in enumerate(pattern.cpu().numpy()):
            groups.setdefault(row.tobytes(), []).append(i)
        out, opened = None, {n: x.new_empty(x.shape[0]) for n in gates}
        for members in groups.values():
            index = torch.tensor(members, device=x.device)
            y, fractions = self._sliced(x.index_select(0, index),
                                        {n: g.index_select(0, index) for n, g in gates.items()})
            if out is None:
                out = y.new_empty((x.shape[0],) + y.shape[1:])
            out[index] = y
            for name, fraction in fractions.items():
                opened[name][index] = fraction
        return out, opened


def block_kind(block: nn.Module, bottleneck_variant: str) -> str:
    if isinstance(block, BasicBlock):
        return "basic"
    if isinstance(block, BottleneckBlock):
        return bottleneck_variant
    raise ValueError(f"MODEL.DEEPMOE.BASE_BACKBONE: DeepMoE gates Detectron2's BasicBlock and "
                     f"BottleneckBlock, not {type(block).__name__}")


class DeepMoEBackbone(WrappedBackbone, DynamicCompute):
    """A residual backbone with DeepMoE's embedding and gating networks (module docstring).

    After each forward: ``gates`` ``[(B, C_l)]`` and ``embedding_out`` ``(B, E)``; :meth:`losses`
    gives ``lambda`` x Eq. 3.8 and ``mu`` x the embedding classifier's cross-entropy (Eq. 3.7).
    """

    metric_prefix = "deepmoe"

    @configurable
    def __init__(self, *, base: Backbone, in_channels: int, num_classes: int,
                 num_experts: int = 16, embedding_layers: int = 4, embedding_channels: int = 16,
                 embedding_norm: str = "BN", lam: float = 0.01, mu: float = 1.0,
                 bottleneck_variant: str = "B", inference: str = "slice",
                 batch_execution: str = "union", freeze_gating: bool = False):
        """
        Args:
            base: a residual backbone of Detectron2 blocks (BasicBlock, BottleneckBlock).
            in_channels: channels of the input images (the embedding network's input).
            num_classes: classes of the embedding classifier (the embedding loss).
            num_experts: E, the size of the latent mixture weights.
            embedding_layers, embedding_channels, embedding_norm: the embedding network.
            lam, mu: the weights of the gate sparsity and embedding losses (Eq. 3.7), >= 0.
            bottleneck_variant: "A" or "B" (module docstring) for bottleneck blocks.
            inference: "slice" or "mask" (module docstring).
            batch_execution: "union" or "group", how "slice" runs a batch of several images.
            freeze_gating: the fine-tuning stage: the embedding and gating networks and the
                embedding classifier are fixed (no gradient, BatchNorm in evaluation mode).
        """
        super().__init__()
        for key, value, allowed in (("INFERENCE", inference, INFERENCE_MODES),
                                    ("BATCH_EXECUTION", batch_execution, BATCH_EXECUTIONS),
                                    ("BOTTLENECK_VARIANT", bottleneck_variant,
                                     BOTTLENECK_VARIANTS)):
            if value not in allowed:
                raise ValueError(f"MODEL.DEEPMOE.{key}={value!r}: expected one of "
                                 f"{list(allowed)}")
        for key, value in (("LAMBDA", lam), ("MU", mu)):
            if value < 0:
                raise ValueError(f"MODEL.DEEPMOE.{key}={value}: expected >= 0")
        blocks = residual_blocks(base)
        if not blocks:
            raise ValueError(f"MODEL.DEEPMOE.BASE_BACKBONE: {type(base).__name__} has no "
                             f"residual blocks to gate; use e.g. build_cifar_resnet_backbone or "
                             f"build_resnet_backbone")
        self.base = base
        self.inference, self.batch_execution = inference, batch_execution
        self.lam, self.mu = lam, mu
        self.freeze_gating = freeze_gating
        channels: List[int] = []
        for parent, name, block in blocks:
            kind = block_kind(block, bottleneck_variant)
            indices = range(len(channels), len(channels) + len(GATED_OUTPUTS[kind]))
            moe = MoEBlock(block, kind, indices, self)
            channels += moe.gated_channels()
            setattr(parent, name, moe)
        self.embedding = ShallowEmbedding(in_channels, num_layers=embedding_layers,
                                          channels=embedding_channels, num_experts=num_experts,
                                          norm=embedding_norm)
        self.gating = MultiHeadGating(num_experts, channels)
        self.embedding_classifier = nn.Linear(num_experts, num_classes)
        if freeze_gating:
            for module in self.gating_modules():
                for p in module.parameters():
                    p.requires_grad_(False)
        self.static = False  # DynamicCompute.static_mode sets it
        self.run = GateRun([], "mask", batch_execution)
        self.gates: List[torch.Tensor] = []
        self.embedding_out: Optional[torch.Tensor] = None
        self._forced_embedding: Optional[torch.Tensor] = None
        self._weights_key: Optional[tuple] = None
        self._folded_modules: Optional[List[nn.Module]] = None
        self._weights_generation = 0
        self._out_features = list(base._out_features)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        moe = cfg.MODEL.DEEPMOE
        if moe.BASE_BACKBONE == "build_deepmoe_backbone":
            raise ValueError("MODEL.DEEPMOE.BASE_BACKBONE must name a residual backbone, not "
                             "build_deepmoe_backbone itself")
        if moe.WIDEN < 1:
            raise ValueError(f"MODEL.DEEPMOE.WIDEN={moe.WIDEN}: expected an integer >= 1")
        if moe.FREEZE_GATING and not cfg.MODEL.WEIGHTS:
            raise ValueError("MODEL.DEEPMOE.FREEZE_GATING True is the fine-tuning stage: set "
                             "MODEL.WEIGHTS to the first stage's model_final.pth")
        base_cfg = widened(cfg, moe.WIDEN)
        base = BACKBONE_REGISTRY.get(moe.BASE_BACKBONE)(base_cfg, input_shape)
        num_classes = config_value(cfg, meta_architecture_needs(cfg).class_count_key)
        return {"base": base, "in_channels": input_shape.channels, "num_classes": num_classes,
                "num_experts": moe.NUM_EXPERTS, "embedding_layers": moe.EMBEDDING_LAYERS,
                "embedding_channels": moe.EMBEDDING_CHANNELS, "embedding_norm": moe.EMBEDDING_NORM,
                "lam": moe.LAMBDA, "mu": moe.MU, "bottleneck_variant": moe.BOTTLENECK_VARIANT,
                "inference": moe.INFERENCE, "batch_execution": moe.BATCH_EXECUTION,
                "freeze_gating": moe.FREEZE_GATING}

    def gating_modules(self) -> List[nn.Module]:
        return [self.embedding, self.gating, self.embedding_classifier]

    @property
    def moe_blocks(self) -> Dict[str, MoEBlock]:
        """``{module path under this backbone: block}``, in execution order."""
        return {name: m for name, m in self.named_modules() if isinstance(m, MoEBlock)}

    def train(self, mode: bool = True) -> "DeepMoEBackbone":
        """``nn.Module.train``; the fine-tuning stage keeps the gating side in evaluation mode."""
        super().train(mode)
        if mode and self.freeze_gating:
            for module in self.gating_modules():
                module.eval()
        return self

    def mode(self) -> str:
        return "slice" if not (self.training or self.static) and self.inference == "slice" \
            else "mask"

    @contextlib.contextmanager
    def forced_embedding(self, embedding: torch.Tensor) -> Iterator[None]:
        """A context in which the gates come from ``embedding`` ``(B, E)`` (the mixture weights
        of other images: the gate-embedding shuffling of Fig. 3.4) instead of the embedding
        network's output for the images themselves."""
        self._forced_embedding = embedding
        try:
            yield
        finally:
            self._forced_embedding = None

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self._forced_embedding is None:
            self.embedding_out = self.embedding(x)
        elif self._forced_embedding.shape[0] != x.shape[0]:
            raise ValueError(f"forced_embedding holds {self._forced_embedding.shape[0]} "
                             f"embeddings for a batch of {x.shape[0]} images")
        else:
            self.embedding_out = self._forced_embedding
        self.gates = self.gating(self.embedding_out)
        mode = self.mode()
        if mode == "slice":
            self._check_weights()
        self.run = GateRun(self.gates, mode, self.batch_execution, self._weights_generation)
        outputs = self.base(x)
        if self.training:  # what per-image "slice" evaluation of these images would run
            self.executed_fraction = self._open_fractions()
        else:
            self.executed_fraction = self.run.executed_fraction(x.shape[0], x.device)
        return outputs

    def _check_weights(self) -> None:
        """Advance the weights generation when a tensor of a folded convolution (its weight,
        its normalization's parameters and statistics) was replaced or changed in place (its
        identity and version counter) since the last sliced forward: one pass over those
        tensors per forward, read from the modules' own dictionaries (no module traversal)."""
        if self._folded_modules is None:
            self._folded_modules = [m for block in self.moe_blocks.values()
                                    for name in CONVS[block.kind]
                                    for m in (getattr(block.block, name),
                                              getattr(block.block, name).norm) if m is not None]
        key = tuple((id(t), t._version) for m in self._folded_modules
                    for t in itertools.chain(m._parameters.values(), m._buffers.values())
                    if t is not None)
        if key != self._weights_key:
            self._weights_key = key
            self._weights_generation += 1

    def _open_fractions(self) -> torch.Tensor:
        """``(B, M)`` fraction of each costed convolution that per-image slicing would run."""
        columns = []
        for block in self.moe_blocks.values():
            opened = {n: (self.gates[i] > 0).float().mean(1).detach()
                      for n, i in zip(GATED_OUTPUTS[block.kind], block.gate_indices)}
            columns += block.conv_fractions(opened)
        return torch.stack(columns, dim=1)

    def costed_modules(self) -> Dict[str, Sequence[str]]:
        """Every costed convolution of every block (``<path>.block.<conv>``)."""
        return {f"{path}.block.{conv}": fixed for path, block in self.moe_blocks.items()
                for conv, fixed in block.costed().items()}

    def losses(self, per_image_loss: Optional[torch.Tensor],
               targets: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Eq. 3.7's extra terms: ``lambda`` x Eq. 3.8 and ``mu`` x the embedding classifier's
        cross-entropy on ``targets`` (class indices ``(B,)``; binary cross-entropy for ``(B, K)``
        presence); both 0 in the fine-tuning stage."""
        if self.freeze_gating:
            return {}
        losses = {"loss_gate_l1": self.lam * gate_l1_loss(self.gates)}
        if targets is not None:
            logits = self.embedding_classifier(self.embedding_out)
            if targets.dim() == 1:
                embedding_loss = F.cross_entropy(logits, targets)
            else:
                embedding_loss = F.binary_cross_entropy_with_logits(logits, targets.float())
            losses["loss_embedding"] = self.mu * embedding_loss
        return losses


def widened(cfg, factor: int):
    """``cfg`` with the base backbone's widths times ``factor`` (the CIFAR ResNet's ``WIDTH``;
    Detectron2 ResNet's ``RES2_OUT_CHANNELS``, ``STEM_OUT_CHANNELS`` and ``WIDTH_PER_GROUP``)."""
    if factor == 1:
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.CIFAR_RESNET.WIDTH *= factor
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS *= factor
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS *= factor
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP *= factor
    return cfg


@BACKBONE_REGISTRY.register()
def build_deepmoe_backbone(cfg, input_shape: ShapeSpec) -> DeepMoEBackbone:
    """``MODEL.DEEPMOE.BASE_BACKBONE`` with DeepMoE's gated channels."""
    return DeepMoEBackbone(cfg, input_shape)
