"""SkipNet gate designs (thesis §2.2, Fig. 2.3).

A gate maps the input ``x`` of gated block ``i``, ``(B, C, H, W)``, to a logit ``(B,)`` of the
probability ``S(x) = sigmoid(logit)`` that the block is executed. ``state`` is the
per-forward :class:`~dynnet_d2.methods.skipnet.gated.GateRun`; only the recurrent gate uses it
(the LSTM shared by all gates and its hidden state).

* ``ffgate1`` (FFGate-I): 2x2 max-pool, 3x3 conv, 3x3 stride-2 conv (each with norm and ReLU),
  global average pooling, a fully connected layer; ~19 % of a basic block's cost.
* ``ffgate2`` (FFGate-II): one 3x3 stride-2 conv, pooling, fully connected; ~12.5 %.
* ``rnn`` (RNNGate): global average pooling, a per-gate linear projection to the LSTM's input
  size, ONE single-layer LSTM shared by every gate (hidden size 10 in the thesis), and a
  per-gate projection of the LSTM output to the logit; ~0.04 % of a block.

At batch 1 in evaluation each gate gives one Python decision (:meth:`decide`). An RNN gate on a
CPU image makes it with one compiled function (numba) that pools, steps the LSTM and projects
(:func:`compiled_rnn_step`, ~10 us) instead of PyTorch's ops (~40 us here: ``aten::lstm_cell``
alone is a dozen small ops): with blocks of a few hundred microseconds at batch 1, the gate's
fixed cost is what keeps skipping a block from saving its time. The PyTorch path stays the
reference (``MODEL.SKIPNET.COMPILED_GATES False``; always on GPUs) and is tested equal.
"""
import functools

import numpy as np
import torch
from detectron2.layers import Conv2d, get_norm
from torch import nn
from torch.nn import functional as F


class FFGateI(nn.Module):
    """FFGate-I (Fig. 2.3a)."""

    def __init__(self, in_channels: int, norm: str = "BN"):
        super().__init__()
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.conv1 = Conv2d(in_channels, in_channels, 3, padding=1, bias=False,
                            norm=get_norm(norm, in_channels))
        self.conv2 = Conv2d(in_channels, in_channels, 3, stride=2, padding=1, bias=False,
                            norm=get_norm(norm, in_channels))
        self.fc = nn.Linear(in_channels, 1)

    def forward(self, x, state=None):
        x = F.relu(self.conv2(F.relu(self.conv1(self.pool(x)))))
        return self.fc(x.mean(dim=(2, 3))).squeeze(1)

    inference_logit = forward

    def decide(self, x, state=None) -> bool:
        """Batch-1 evaluation: execute the block?"""
        return self(x).item() >= 0


class FFGateII(nn.Module):
    """FFGate-II (Fig. 2.3b)."""

    def __init__(self, in_channels: int, norm: str = "BN"):
        super().__init__()
        self.conv = Conv2d(in_channels, in_channels, 3, stride=2, padding=1, bias=False,
                           norm=get_norm(norm, in_channels))
        self.fc = nn.Linear(in_channels, 1)

    def forward(self, x, state=None):
        return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3))).squeeze(1)

    inference_logit = forward
    decide = FFGateI.decide


class RNNGate(nn.Module):
    """RNNGate (Fig. 2.3c): this gate's projections around the LSTM in ``state.lstm``.

    :meth:`inference_logit` is the same function with the pooling and the input projection
    folded into the LSTM's input weights (``W_ih (P mean(x) + b) + b_ih =
    (W_ih P / HW) sum(x) + (W_ih b + b_ih)``) and no module calls: at batch 1 the gate's cost is
    its few kernel launches, so fewer of them is what makes skipping a block save time.
    """

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.project_in = nn.Linear(in_channels, hidden)
        self.project_out = nn.Linear(hidden, 1)
        self._inference = None  # see _inference_weights

    def forward(self, x, state):
        h, c = state.lstm(self.project_in(x.mean(dim=(2, 3))), state.rnn_state)
        state.rnn_state = (h, c)
        return self.project_out(h).squeeze(1)

    def train(self, mode: bool = True) -> "RNNGate":
        self._inference = None
        return super().train(mode)

    def _inference_weights(self, lstm: nn.LSTMCell, area: int):
        """The tensors :meth:`inference_logit` uses: ``W_ih P / area``, ``W_ih b + b_ih``,
        ``W_hh``, ``b_hh``, the output projection and zero initial states. Cached; rebuilt when
        a parameter was modified in place (its version changed), the input size changed, or
        after ``train()`` / ``eval()`` (e.g. a parameter was replaced)."""
        cached = self._inference
        if cached is not None and cached[0] == area and all(
                t._version == v for t, v in zip(cached[1], cached[2])):
            return cached[3]
        params = (self.project_in.weight, self.project_in.bias, lstm.weight_ih, lstm.bias_ih,
                  lstm.weight_hh, lstm.bias_hh, self.project_out.weight, self.project_out.bias)
        with torch.no_grad():
            zeros = lstm.weight_hh.new_zeros((1, lstm.hidden_size))
            weights = (lstm.weight_ih @ self.project_in.weight / area,
                       lstm.weight_ih @ self.project_in.bias + lstm.bias_ih,
                       lstm.weight_hh, lstm.bias_hh, self.project_out.weight.t(),
                       self.project_out.bias, (zeros, zeros))
            # the same for compiled_rnn_step: float32 host arrays, the two biases summed
            host = tuple(np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32) for t in
                         (weights[0], weights[1] + lstm.bias_hh, lstm.weight_hh,
                          self.project_out.weight[0]))
            weights += (host + (float(self.project_out.bias),),)
        self._inference = (area, params, tuple(p._version for p in params), weights)
        return weights

    def inference_logit(self, x, state):
        """:meth:`forward` without autograd, for evaluation (the average pooling's ``1 / HW``
        folded into the weights too)."""
        weight_ih, bias_ih, weight_hh, bias_hh, out_weight, out_bias, zeros, _ = (
            self._inference_weights(state.lstm, x.shape[2] * x.shape[3]))
        rnn_state = state.rnn_state
        if rnn_state is None:
            rnn_state = zeros if x.shape[0] == 1 else tuple(
                z.expand(x.shape[0], -1).contiguous() for z in zeros)
        h, c = torch.lstm_cell(x.sum(dim=(2, 3)), rnn_state, weight_ih, weight_hh, bias_ih,
                               bias_hh)
        state.rnn_state = (h, c)
        return torch.addmm(out_bias, h, out_weight).squeeze(1)

    def decide(self, x, state) -> bool:
        """Batch-1 evaluation: execute the block? With ``state.compiled`` (a CPU image) one call
        of :func:`compiled_rnn_step` on host arrays (the LSTM state lives in ``state`` as two
        float32 arrays, updated in place); else :meth:`inference_logit`."""
        if not state.compiled:
            return self.inference_logit(x, state).item() >= 0
        w_ih, bias, w_hh, w_out, b_out = self._inference_weights(
            state.lstm, x.shape[2] * x.shape[3])[-1]
        if state.rnn_state is None:
            state.rnn_state = (np.zeros(len(w_out), np.float32), np.zeros(len(w_out), np.float32))
        h, c = state.rnn_state
        return compiled_rnn_step()(x.numpy(), w_ih, bias, w_hh, h, c, w_out, b_out) >= 0


@functools.lru_cache(maxsize=None)
def compiled_rnn_step():
    """``step(x (1, C, H, W), w_ih (4H', C), bias (4H',), w_hh (4H', H'), h (H',), c (H',),
    w_out (H',), b_out) -> logit``: sum-pooling of ``x`` (the ``1 / HW`` and the input projection
    are folded into ``w_ih``), one LSTM step (gates i, f, g, o; ``h`` and ``c`` updated in place)
    and the output projection, as one numba-compiled function (compiled on first use)."""
    import numba

    @numba.njit(cache=False)
    def step(x, w_ih, bias, w_hh, h, c, w_out, b_out):
        channels, hidden = x.shape[1], h.shape[0]
        pooled = np.empty(channels, np.float32)
        for k in range(channels):
            pooled[k] = x[0, k].sum()
        z = w_ih @ pooled + w_hh @ h + bias
        logit = b_out
        for j in range(hidden):
            i = 1.0 / (1.0 + np.exp(-z[j]))
            f = 1.0 / (1.0 + np.exp(-z[hidden + j]))
            g = np.tanh(z[2 * hidden + j])
            o = 1.0 / (1.0 + np.exp(-z[3 * hidden + j]))
            c[j] = f * c[j] + i * g
            h[j] = o * np.tanh(c[j])
            logit += w_out[j] * h[j]
        return logit

    return step


GATE_TYPES = {"ffgate1": FFGateI, "ffgate2": FFGateII, "rnn": RNNGate}
