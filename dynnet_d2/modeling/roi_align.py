"""ROIAlign with a CPU backward made of matrix products (Detectron2's ``ROIAlign``, whose
forward stays torchvision's ``roi_align``).

torchvision's CPU backward of ``roi_align`` adds every sample's gradient to the feature map one
scalar at a time, on one thread; on this project's small feature maps it was about a fifth of a
Mask R-CNN training iteration and half of ShapeProp's (projects/ShapeProp/README.md, "Cost").

With a fixed sampling ratio s (``POOLER_SAMPLING_RATIO`` > 0), bin (i, j) of RoI r is the mean of
s x s bilinear samples at rows y_ia and columns x_jb, and the bilinear weight of a sample is a
product of a weight along y and one along x. So the output is separable:
``out[r, c] = A_r X[b_r, c] B_r^T`` with ``A_r`` (Sh, H) holding, for bin row i, the y-weights of
its s samples divided by s (:func:`axis_weights`), ``B_r`` (Sw, W) the same along x, and
``X[b_r]`` (C, H, W) the features of the RoI's image. The gradient with respect to the
features of image b is ``sum_r A_r^T G_r B_r`` over its RoIs, G_r (C, Sh, Sw) the output's
gradient: one batched product ``G_r B_r`` (r, Sh, C, W), then one matrix product of the stacked
``A_r^T`` (H, r Sh) with it (r Sh, C W). Its cost grows with the map's size (H, W), the
scatter's does not: :func:`separable_backward_is_cheaper` keeps torchvision's backward where the
maps are large (e.g. the finest level of 800-pixel images). Out-of-range samples, the clamping
at the map's last row and column and ``aligned`` follow torchvision's kernel; tests pin the
gradient to torchvision's.

:func:`use_roi_align_cpu_backward` swaps the ``ROIAlign`` modules of a model's poolers
(``MODEL.ROI_ALIGN_CPU_BACKWARD``; ``DynnetTrainer.build_model`` applies it). On CUDA, with an
adaptive sampling ratio (0), or without a gradient to compute, it is Detectron2's ``ROIAlign``.
"""
from typing import Tuple

import torch
from detectron2.layers import ROIAlign
from detectron2.modeling.poolers import ROIPooler
from torch import nn
from torchvision.ops import roi_align

from ..utils.measure import interleaved_median_s

CPU_BACKWARDS = ("separable", "torchvision")
# The separable backward is used when its multiply-adds are fewer than this many times the
# scatter's: the break-even was between 124 (1.4x faster) and 143 (0.84x) on this 2-core CPU,
# 1 thread (benchmarks/roi_align_backward_2cpu.json, tools/benchmark_roi_align.py).
SCATTER_COST = 100


def axis_weights(start: torch.Tensor, length: torch.Tensor, bins: int, sampling_ratio: int,
                 size: int) -> torch.Tensor:
    """(R, bins, size): along one axis of a map of ``size`` cells, the bilinear weights of each
    bin's ``sampling_ratio`` samples, divided by ``sampling_ratio``, for RoIs starting at
    ``start`` (R,) with extent ``length`` (R,) in map coordinates (torchvision's
    ``bilinear_interpolate``: a sample outside [-1, size] weighs 0, one in [-1, 0] is clamped to
    0, one at or beyond the last cell uses that cell alone)."""
    rois, dtype = start.shape[0], start.dtype
    steps = (torch.arange(bins * sampling_ratio, dtype=dtype, device=start.device) + 0.5)
    v = start[:, None] + steps[None] * (length / (bins * sampling_ratio))[:, None]
    inside = ((v >= -1.0) & (v <= size)).to(dtype) / sampling_ratio
    v = v.clamp(min=0.0)
    low = v.floor().long().clamp(max=size - 1)
    at_edge = low >= size - 1
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(v), v - low.to(dtype))
    weights = torch.zeros(rois, bins * sampling_ratio, size, dtype=dtype, device=start.device)
    weights.scatter_add_(2, low[..., None], ((1.0 - frac) * inside)[..., None])
    weights.scatter_add_(2, high[..., None], (frac * inside)[..., None])
    return weights.view(rois, bins, sampling_ratio, size).sum(dim=2)


def multiply_adds_per_scatter_add(channels: int, output_size: Tuple[int, int],
                                  sampling_ratio: int, height: int, width: int) -> float:
    """The separable backward's multiply-adds per RoI, ``C Sh W (Sw + H)``, over torchvision's
    scatter-adds per RoI, ``C Sh Sw s^2 4``."""
    bins_h, bins_w = output_size
    separable = channels * bins_h * width * (bins_w + height)
    return separable / (channels * bins_h * bins_w * sampling_ratio ** 2 * 4)


def separable_backward_is_cheaper(channels: int, output_size: Tuple[int, int],
                                  sampling_ratio: int, height: int, width: int) -> bool:
    """Whether :func:`multiply_adds_per_scatter_add` is below :data:`SCATTER_COST`."""
    return multiply_adds_per_scatter_add(channels, output_size, sampling_ratio, height,
                                         width) < SCATTER_COST


class _SeparableBackward(torch.autograd.Function):
    """torchvision's ``roi_align`` forward; the backward of the module docstring."""

    @staticmethod
    def forward(ctx, features, rois, output_size, spatial_scale, sampling_ratio, aligned):
        ctx.save_for_backward(rois)
        ctx.shape, ctx.output_size = features.shape, output_size
        ctx.spatial_scale, ctx.sampling_ratio, ctx.aligned = spatial_scale, sampling_ratio, aligned
        return roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    def backward(ctx, grad):
        (rois,) = ctx.saved_tensors
        _, channels, height, width = ctx.shape
        bins_h, bins_w = ctx.output_size
        x1, y1, x2, y2 = (rois[:, 1:] * ctx.spatial_scale - (0.5 if ctx.aligned else 0.0)
                          ).unbind(1)
        roi_w, roi_h = x2 - x1, y2 - y1
        if not ctx.aligned:  # the legacy RoIAlign forces every RoI to at least one cell
            roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
        along_y = axis_weights(y1, roi_h, bins_h, ctx.sampling_ratio, height)  # (R, Sh, H)
        along_x = axis_weights(x1, roi_w, bins_w, ctx.sampling_ratio, width)  # (R, Sw, W)
        grad_features = grad.new_zeros(ctx.shape[0], height, channels, width)
        images, counts = torch.unique_consecutive(rois[:, 0].long(), return_counts=True)
        counts = counts.tolist()
        for image, g, a_y, a_x in zip(images.tolist(), grad.split(counts),
                                      along_y.split(counts), along_x.split(counts)):
            # G_r B_r for every RoI of the image: (r, Sh, C, W)
            right = torch.einsum("rcij,rjw->ricw", g, a_x)
            grad_features[image] += (a_y.reshape(-1, height).t()
                                     @ right.reshape(-1, channels * width)
                                     ).view(height, channels, width)
        return grad_features.permute(0, 2, 1, 3), None, None, None, None, None


class SeparableBackwardROIAlign(ROIAlign):
    """Detectron2's ``ROIAlign`` whose CPU backward is :class:`_SeparableBackward`'s where that
    is cheaper (fixed sampling ratio; :func:`separable_backward_is_cheaper`)."""

    def forward(self, input, rois):
        size = self.output_size if isinstance(self.output_size, (tuple, list)) else (
            self.output_size, self.output_size)
        if (input.device.type != "cpu" or input.is_quantized or self.sampling_ratio <= 0
                or not (torch.is_grad_enabled() and input.requires_grad)
                or not separable_backward_is_cheaper(input.shape[1], tuple(size),
                                                     self.sampling_ratio, *input.shape[-2:])):
            return super().forward(input, rois)
        assert rois.dim() == 2 and rois.size(1) == 5
        return _SeparableBackward.apply(input, rois.to(dtype=input.dtype), tuple(size),
                                        self.spatial_scale, self.sampling_ratio, self.aligned)


def use_roi_align_cpu_backward(model: nn.Module, backward: str) -> int:
    """Make every ``ROIAlign`` of the model's ``ROIPooler`` s use the CPU ``backward`` of
    :data:`CPU_BACKWARDS` (``MODEL.ROI_ALIGN_CPU_BACKWARD``): a
    :class:`SeparableBackwardROIAlign` or Detectron2's ``ROIAlign`` with the same arguments (in
    place; they hold no parameters); returns how many layers were replaced."""
    if backward not in CPU_BACKWARDS:
        raise ValueError(f"MODEL.ROI_ALIGN_CPU_BACKWARD={backward!r}; expected one of "
                         f"{CPU_BACKWARDS}")
    target = SeparableBackwardROIAlign if backward == "separable" else ROIAlign
    replaced = 0
    for pooler in model.modules():
        if not isinstance(pooler, ROIPooler):
            continue
        for i, level in enumerate(pooler.level_poolers):
            if type(level) in (ROIAlign, SeparableBackwardROIAlign) and type(level) is not target:
                pooler.level_poolers[i] = target(level.output_size, level.spatial_scale,
                                                 level.sampling_ratio, level.aligned)
                replaced += 1
    return replaced


#: (channels, map height, map width, bins, RoIs) timed by :func:`time_backwards`: this project's
#: finest FPN level at ~160-pixel images (box and mask poolers), twice that, and 800-pixel
#: images' coarser and finest levels (256 channels).
BENCHMARK_CASES = ((64, 44, 73, 7, 256), (64, 44, 73, 14, 256), (64, 88, 146, 7, 256),
                   (256, 100, 150, 7, 512), (256, 200, 304, 14, 128))


def time_backwards(cases=BENCHMARK_CASES, *, sampling_ratio: int = 2, images: int = 2,
                   rounds: int = 5, seed: int = 0) -> list:
    """For each case, the median wall time (interleaved rounds) of torchvision's backward and of
    the separable one on the same random RoIs (up to 60 x 60 input pixels at stride 4), their
    ratio, the ratio of multiply-adds to scatter-adds that :func:`separable_backward_is_cheaper`
    compares with :data:`SCATTER_COST`, and which backward the layer picks."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for channels, height, width, bins, count in cases:
        features = torch.randn(images, channels, height, width, generator=generator,
                               requires_grad=True)
        corner = torch.rand(count, 2, generator=generator) * torch.tensor(
            [width * 4.0 - 20, height * 4.0 - 20])
        size = torch.rand(count, 2, generator=generator) * 60 + 4
        index = torch.randint(0, images, (count, 1), generator=generator).sort(dim=0).values
        rois = torch.cat([index.float(), corner, corner + size], dim=1)
        args = ((bins, bins), 0.25, sampling_ratio, True)
        outputs = {"torchvision": roi_align(features, rois, *args),
                   "separable": _SeparableBackward.apply(features, rois, *args)}
        grad = torch.randn(outputs["torchvision"].shape, generator=generator)

        def backward(out):
            return lambda: torch.autograd.grad(out, features, grad, retain_graph=True)

        times = interleaved_median_s({k: backward(v) for k, v in outputs.items()}, rounds)
        shape = (channels, (bins, bins), sampling_ratio, height, width)
        rows.append({
            "channels": channels, "height": height, "width": width, "bins": bins, "rois": count,
            "torchvision_s": round(times["torchvision"]["median_s"], 5),
            "separable_s": round(times["separable"]["median_s"], 5),
            "speedup": round(times["torchvision"]["median_s"] / times["separable"]["median_s"], 2),
            "multiply_adds_per_scatter_add": round(multiply_adds_per_scatter_add(*shape), 1),
            "picked": "separable" if separable_backward_is_cheaper(*shape) else "torchvision"})
    return rows
