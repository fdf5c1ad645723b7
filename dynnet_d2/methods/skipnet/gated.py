"""SkipNet: a gate before every residual block of a residual backbone (thesis §2.2).

Eq. 2.1: ``x_{i+1} = G_i(x_i) F_i(x_i) + (1 - G_i(x_i)) S_i(x_i)``, with ``F_i`` the whole block
(residual branch, shortcut and ReLU) and ``S_i`` its shortcut: the identity, or the block's
1x1 projection when the block changes shape (the thesis' "pooling"). Shapes: ``x_i`` is
``(B, C, H, W)``; every decision, probability and log-probability below is ``(B,)`` per block,
stacked to ``(B, N)`` over the ``N`` gated blocks.

How ``G`` is computed (``MODEL.SKIPNET.STAGE``; evaluation is always the most likely action,
``G = 1[S >= 0.5]``, except SDV):

====================  =============================================  =========================
stage (training)      gate value                                     execution
====================  =============================================  =========================
``SP``  (Eq. 2.7)     ``1[S >= 0.5]`` forward, ``S`` backward        every block on every input
``SOFT`` (Highway)    ``S``                                          every block on every input
``HRL`` (Eq. 2.5-2.6) ``g ~ Bernoulli(S)``, REINFORCE on log pi(g)   executed inputs only
``SDV``               ``g ~ Bernoulli(1 - SDV_SKIP_RATE)``, no gate  executed inputs only
====================  =============================================  =========================

"Executed inputs only" means a block really runs on just the inputs whose gate is 1 (gather,
block, scatter; a Python branch at batch 1), so a skipped input costs nothing and, in training,
does not enter the block's BatchNorm statistics (the reference code ran every block and
multiplied by 0/1). In HRL the BatchNorm statistics are also frozen by default
(``MODEL.SKIPNET.HRL_FREEZE_BN``): sampled gates change what reaches the later blocks, and
statistics gathered under sampling do not fit the deterministic gates of inference.
``MODEL.SKIPNET.INFERENCE "mask"`` evaluates the reference way, for timing comparisons.
"""
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.resnet import CNNBlockBase
from torch import nn
from torch.nn import functional as F

from ...modeling.dynamic import DynamicCompute
from ...modeling.residual import WrappedBackbone, residual_blocks
from .gates import GATE_TYPES, RNNGate

STAGES = ("SP", "SOFT", "HRL", "SDV")
INFERENCE_MODES = ("skip", "mask")


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, probability):
        return (probability >= 0.5).to(probability.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


def straight_through(probability: torch.Tensor) -> torch.Tensor:
    """Eq. 2.7: exactly ``1[p >= 0.5]`` in the forward pass, the gradient of ``p`` in the
    backward (the identity from the hard gate to ``p``)."""
    return _StraightThrough.apply(probability)


def reinforce_loss(decisions: torch.Tensor, log_probs: torch.Tensor, task_loss: torch.Tensor, *,
                   alpha: float, beta: float) -> torch.Tensor:
    """The REINFORCE term of Eq. 2.6 with the relaxed reward of §2.2, as a loss to minimise.

    ``decisions`` (B, N) are the sampled ``g_i``; ``log_probs`` (B, N) are ``log pi(g_i)``;
    ``task_loss`` (B,) is the prediction loss of each input. With skipping rewards
    ``R_i = 1 - g_i`` (``C_i = 1``), the cumulative future reward is
    ``r_i = -(beta L - alpha / N sum_{j >= i} R_j)`` and the loss is
    ``-mean_b sum_i log pi(g_i) r_i`` (its gradient is minus the REINFORCE estimate).
    """
    n = decisions.shape[1]
    future_skips = (1 - decisions).flip(1).cumsum(1).flip(1)
    reward = -(beta * task_loss[:, None] - alpha / n * future_skips)
    return -(log_probs * reward.detach()).sum(1).mean()


class GateRun:
    """State of one forward pass, shared by the gated blocks: the mode, the LSTM and its hidden
    state (RNN gates), and the decisions / log-probabilities recorded in block order."""

    def __init__(self, mode: str, lstm: Optional[nn.Module], skip_rate: float,
                 compiled: bool = False):
        self.mode, self.lstm, self.skip_rate = mode, lstm, skip_rate
        self.compiled = compiled  # batch-1 RNN gates decide by compiled_rnn_step (gates.py)
        self.rnn_state = None
        self.decisions: List[torch.Tensor] = []
        self.log_probs: List[torch.Tensor] = []


class GatedBlock(nn.Module):
    """A residual block (Detectron2 ``CNNBlockBase`` with a ``shortcut``) behind a gate."""

    def __init__(self, block: CNNBlockBase, gate: Optional[nn.Module], owner: "SkipNetBackbone"):
        super().__init__()
        self.block = block
        self.gate = gate
        self._owner = [owner]  # a list, so the owner is not registered as a submodule

    def skip_path(self, x: torch.Tensor) -> torch.Tensor:
        """``S_i(x)``: what a skipped block outputs."""
        shortcut = self.block.shortcut
        return x if shortcut is None else shortcut(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        run = self._owner[0].run
        mode = run.mode
        if mode == "hard" and x.shape[0] == 1 and not torch.is_grad_enabled():
            # Evaluation at batch 1: one Python decision, nothing else (see RNNGate).
            modules = self._modules  # direct look-ups: nn.Module.__getattr__ is slow
            execute = modules["gate"].decide(x, run)
            run.decisions.append(float(execute))
            return modules["block"](x) if execute else self.skip_path(x)
        logit = None if self.gate is None else self.gate(x, run)
        if mode == "static":
            run.decisions.append(x.new_ones(x.shape[0]))
            return self.block(x)
        if mode in ("st", "soft", "mask"):
            probability = torch.sigmoid(logit)
            gate = {"st": straight_through, "soft": lambda p: p,
                    "mask": lambda p: (p >= 0.5).to(p.dtype)}[mode](probability)
            run.decisions.append(gate.detach())
            gate = gate.view(-1, 1, 1, 1)
            return gate * self.block(x) + (1 - gate) * self.skip_path(x)
        if mode == "sample":
            decision = torch.bernoulli(torch.sigmoid(logit.detach()))
            run.log_probs.append(-F.binary_cross_entropy_with_logits(logit, decision,
                                                                     reduction="none"))
        elif mode == "random":
            decision = torch.bernoulli(x.new_full((x.shape[0],), 1.0 - run.skip_rate))
        else:  # "hard": the most likely action
            decision = (logit >= 0).to(x.dtype)
        run.decisions.append(decision)
        return self.execute(x, decision > 0)

    def execute(self, x: torch.Tensor, execute: torch.Tensor) -> torch.Tensor:
        """The block on the inputs where ``execute`` (B,) is True, ``S_i`` on the others."""
        if x.shape[0] == 1:
            return self.block(x) if bool(execute) else self.skip_path(x)
        executed = execute.nonzero().squeeze(1)
        if executed.numel() == x.shape[0]:
            return self.block(x)
        if executed.numel() == 0:
            return self.skip_path(x)
        skipped = (~execute).nonzero().squeeze(1)
        y = self.block(x.index_select(0, executed))
        out = y.new_empty((x.shape[0],) + y.shape[1:])
        out[executed] = y
        out[skipped] = self.skip_path(x.index_select(0, skipped)).to(y.dtype)
        return out


class SkipNetBackbone(WrappedBackbone, DynamicCompute):
    """A residual backbone whose every residual block is a :class:`GatedBlock`.

    After each forward, ``gate_decisions`` (B, N) holds the decisions of the ``N`` gates (1 =
    executed) and :meth:`losses` gives the REINFORCE loss of the HRL stage. The dynamic-compute
    protocol (:class:`~dynnet_d2.modeling.dynamic.DynamicCompute`): the costed parts are the
    gated blocks (their shortcuts always run), the executed fraction is ``gate_decisions``
    (every block in the reference ``"mask"`` inference, which computes them all).
    """

    metric_prefix = "skipnet"

    @configurable
    def __init__(self, *, base: Backbone, gate_type: str, stage: str = "SP",
                 alpha: float = 0.1, beta: float = -1.0, rnn_hidden: int = 10,
                 sdv_skip_rate: float = 0.5, inference: str = "skip", norm: str = "BN",
                 hrl_freeze_bn: bool = True, compiled_gates: bool = True):
        """
        Args:
            base: a residual backbone; a gate is put before each of its residual blocks.
            gate_type: "ffgate1", "ffgate2" or "rnn" (Fig. 2.3).
            stage: "SP", "HRL", "SOFT" or "SDV" (the module docstring's table).
            alpha, beta: the cost weight and the prediction loss' weight of the HRL reward
                (beta < 0: alpha / N).
            rnn_hidden: hidden size of the RNN gate's LSTM.
            sdv_skip_rate: SDV's probability that a block is skipped.
            inference: "skip" (real skipping) or "mask" (every block computed, the reference).
            norm: normalization of the feed-forward gates' convolutions.
            hrl_freeze_bn: keep every BatchNorm in evaluation mode during HRL.
            compiled_gates: RNN gates decide with one compiled function at batch 1 on the CPU.
        """
        super().__init__()
        if gate_type not in GATE_TYPES:
            raise ValueError(f"MODEL.SKIPNET.GATE_TYPE={gate_type!r}: expected one of "
                             f"{sorted(GATE_TYPES)}")
        if stage not in STAGES:
            raise ValueError(f"MODEL.SKIPNET.STAGE={stage!r}: expected one of {list(STAGES)}")
        if inference not in INFERENCE_MODES:
            raise ValueError(f"MODEL.SKIPNET.INFERENCE={inference!r}: expected one of "
                             f"{list(INFERENCE_MODES)}")
        if alpha < 0:
            raise ValueError(f"MODEL.SKIPNET.ALPHA={alpha}: the cost weight must be >= 0")
        if not 0.0 <= sdv_skip_rate <= 1.0:
            raise ValueError(f"MODEL.SKIPNET.SDV_SKIP_RATE={sdv_skip_rate}: expected a "
                             f"probability in [0, 1]")
        blocks = residual_blocks(base)
        if not blocks:
            raise ValueError(
                f"MODEL.SKIPNET.BASE_BACKBONE: {type(base).__name__} has no residual blocks to "
                f"gate (SkipNet gates Detectron2 blocks with a shortcut: BasicBlock, "
                f"BottleneckBlock); use e.g. build_cifar_resnet_backbone or build_resnet_backbone"
            )
        self.base = base
        self.stage, self.inference = stage, inference
        self.alpha = alpha
        self.beta = alpha / len(blocks) if beta < 0 else beta
        self.sdv_skip_rate = sdv_skip_rate
        self.hrl_freeze_bn = hrl_freeze_bn
        self.compiled_gates = compiled_gates
        self.lstm = nn.LSTMCell(rnn_hidden, rnn_hidden) if gate_type == "rnn" else None
        for parent, name, block in blocks:
            if stage == "SDV":
                gate = None
            elif gate_type == "rnn":
                gate = RNNGate(block.in_channels, rnn_hidden)
            else:
                gate = GATE_TYPES[gate_type](block.in_channels, norm=norm)
            setattr(parent, name, GatedBlock(block, gate, self))
        self.static = False  # DynamicCompute.static_mode sets it
        self.run = GateRun("static", self.lstm, sdv_skip_rate)
        self.gate_decisions: Optional[torch.Tensor] = None
        self.gate_log_probs: Optional[torch.Tensor] = None
        self._out_features = list(base._out_features)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        skipnet = cfg.MODEL.SKIPNET
        if skipnet.STAGE == "HRL" and cfg.MODEL.META_ARCHITECTURE != "ImageClassifier":
            raise ValueError(
                f"MODEL.SKIPNET.STAGE='HRL' rewards each input's own prediction loss, which only "
                f"MODEL.META_ARCHITECTURE='ImageClassifier' provides (got "
                f"{cfg.MODEL.META_ARCHITECTURE!r}); train detectors with STAGE 'SP', 'SOFT' or "
                f"'SDV'"
            )
        if skipnet.BASE_BACKBONE == "build_skipnet_backbone":
            raise ValueError("MODEL.SKIPNET.BASE_BACKBONE must name a residual backbone, not "
                             "build_skipnet_backbone itself")
        base = BACKBONE_REGISTRY.get(skipnet.BASE_BACKBONE)(cfg, input_shape)
        return {"base": base, "gate_type": skipnet.GATE_TYPE, "stage": skipnet.STAGE,
                "alpha": skipnet.ALPHA, "beta": skipnet.BETA, "rnn_hidden": skipnet.RNN_HIDDEN,
                "sdv_skip_rate": skipnet.SDV_SKIP_RATE, "inference": skipnet.INFERENCE,
                "hrl_freeze_bn": skipnet.HRL_FREEZE_BN, "compiled_gates": skipnet.COMPILED_GATES}

    @property
    def gated_blocks(self) -> Dict[str, GatedBlock]:
        """``{module path under this backbone: gated block}``, in execution order."""
        return {name: m for name, m in self.named_modules() if isinstance(m, GatedBlock)}

    def mode(self) -> str:
        """How the gates act in this forward (see the module docstring)."""
        if self.static:
            return "static"
        if self.stage == "SDV":
            return "random"
        if self.training:
            return {"SP": "st", "SOFT": "soft", "HRL": "sample"}[self.stage]
        return "hard" if self.inference == "skip" else "mask"

    def train(self, mode: bool = True) -> "SkipNetBackbone":
        """``nn.Module.train``; in the HRL stage with ``hrl_freeze_bn`` every BatchNorm stays
        in evaluation mode (normalizes with, and keeps, its SP statistics)."""
        super().train(mode)
        if mode and self.stage == "HRL" and self.hrl_freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        mode = self.mode()
        self.run = GateRun(mode, self.lstm, self.sdv_skip_rate,
                           compiled=(self.compiled_gates and x.device.type == "cpu"
                                     and x.dtype == torch.float32))
        outputs = self.base(x)
        decisions = self.run.decisions
        self.gate_decisions = (torch.stack(decisions, dim=1) if torch.is_tensor(decisions[0])
                               else torch.tensor([decisions], device=x.device))
        self.gate_log_probs = (torch.stack(self.run.log_probs, dim=1) if self.run.log_probs
                               else None)
        self.executed_fraction = (torch.ones_like(self.gate_decisions) if mode == "mask"
                                  else self.gate_decisions)
        return outputs

    def costed_modules(self) -> Dict[str, Sequence[str]]:
        """Every gated block (``<path>.block``); its shortcut runs whatever the gate says."""
        return {f"{path}.block": ("shortcut",) for path in self.gated_blocks}

    def leaves_parameters_unused(self) -> bool:
        """HRL and SDV run a block only on the inputs that execute it: a block every input of
        a batch skipped has no gradient."""
        return self.stage in ("HRL", "SDV")

    def losses(self, task_loss: torch.Tensor,
               targets: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """HRL training: ``{"loss_policy": REINFORCE loss}`` for the per-input prediction losses
        ``task_loss`` (B,) of the last forward; otherwise ``{}`` (``targets`` are not used)."""
        if self.gate_log_probs is None:
            return {}
        return {"loss_policy": reinforce_loss(self.gate_decisions, self.gate_log_probs,
                                              task_loss.detach(), alpha=self.alpha,
                                              beta=self.beta)}


@BACKBONE_REGISTRY.register()
def build_skipnet_backbone(cfg, input_shape: ShapeSpec) -> SkipNetBackbone:
    """``MODEL.SKIPNET.BASE_BACKBONE`` with a gate before each residual block."""
    return SkipNetBackbone(cfg, input_shape)
