"""Measuring a trained (SkipNet) ImageClassifier: accuracy, executed FLOPs and gate decisions
per image, wall-clock time per image in the same process, and the thesis' plots.

* :func:`run_gated` : predictions, executed GFLOPs (B,) and gate decisions (B, N) over images;
* :func:`time_logits`: seconds per image of ``model.logits`` at a batch size, several repeats;
* :func:`plot_skip_ratio_per_class`: per-block skip ratio of each class (thesis Fig. 2.10).

``images`` are ``(N, C, H, W)`` tensors in ``INPUT.FORMAT`` (uint8); the model normalizes them.
"""
import statistics
import time
from functools import partial
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ...utils.measure import interleaved_rounds
from ...utils.plots import plot_per_class_heatmap
from ...utils.stats import per_class_mean


def _normalized(model, images: torch.Tensor) -> torch.Tensor:
    return model.preprocess([{"image": image} for image in images])


@torch.inference_mode()
def run_gated(model, images: torch.Tensor, batch_size: int = 256) -> Dict[str, torch.Tensor]:
    """``{"predictions": (N,), "gflops": (N,), "decisions": (N, B_gated) or (N, 0)}`` of ``model``
    in evaluation mode on ``images``."""
    model.eval()
    predictions, gflops, decisions = [], [], []
    for start in range(0, len(images), batch_size):
        outputs = model([{"image": image} for image in images[start:start + batch_size]])
        predictions.append(torch.stack([o["scores"] for o in outputs]).argmax(1).cpu())
        gflops.append(torch.tensor([o["gflops"] for o in outputs]))
        gates = getattr(model.backbone, "gate_decisions", None)
        decisions.append(gates.cpu() if gates is not None else torch.zeros(len(outputs), 0))
    return {"predictions": torch.cat(predictions), "gflops": torch.cat(gflops),
            "decisions": torch.cat(decisions)}


@torch.inference_mode()
def time_logits(model, images: torch.Tensor, batch_size: int) -> float:
    """Seconds per image of ``model.logits`` over ``images`` in batches of ``batch_size``
    (normalization excluded; one batch of warm-up first)."""
    model.eval()
    batches = [_normalized(model, images[s:s + batch_size])
               for s in range(0, len(images), batch_size)]
    model.logits(batches[0])
    start = time.perf_counter()
    for batch in batches:
        model.logits(batch)
    return (time.perf_counter() - start) / len(images)


# How a SkipNet runs in each timed mode: (MODEL.SKIPNET.INFERENCE, COMPILED_GATES).
INFERENCE_MODES = {"skip": ("skip", True), "skip-eager": ("skip", False), "mask": ("mask", True)}


def set_inference_mode(model, mode: str) -> None:
    """Put the SkipNet backbone of ``model`` in a mode of :data:`INFERENCE_MODES`: real skipping
    with compiled batch-1 gates ("skip"), with PyTorch's gates ("skip-eager"), or every block
    computed and masked ("mask")."""
    model.backbone.inference, model.backbone.compiled_gates = INFERENCE_MODES[mode]


def time_variants(variants: Dict[str, Tuple[object, Optional[str]]], images: torch.Tensor,
                  batch_size: int, repeats: int = 3) -> Dict[str, Dict[str, float]]:
    """:func:`time_logits` of each ``name: (model, inference mode or None)``, the variants
    interleaved ``repeats`` times (so machine noise hits all alike); the mode (a key of
    :data:`INFERENCE_MODES`) is set on a SkipNet backbone before its turn. ``{name:
    {"median_ms_per_image", "runs_ms"}}``."""
    def turn(model, mode):
        if mode is not None:
            set_inference_mode(model, mode)
        return 1e3 * time_logits(model, images, batch_size)

    runs = interleaved_rounds({name: partial(turn, model, mode)
                               for name, (model, mode) in variants.items()}, repeats)
    return {name: {"median_ms_per_image": statistics.median(r), "runs_ms": r}
            for name, r in runs.items()}


def skip_ratio_per_class(decisions: torch.Tensor, labels: torch.Tensor,
                         num_classes: int) -> np.ndarray:
    """(num_classes, N) fraction of each class's images that skipped each gated block."""
    return per_class_mean(1.0 - decisions.float().numpy(), labels.numpy(), num_classes)


def plot_skip_ratio_per_class(ratios: np.ndarray, class_names: Sequence[str],
                              stage_sizes: Sequence[int], path: str, title: str) -> None:
    """Heat map of :func:`skip_ratio_per_class` (classes x blocks), stage borders marked."""
    plot_per_class_heatmap(ratios, class_names, path, title=title,
                           xlabel="gated block (stages separated by white lines)",
                           colorbar_label="skip ratio", borders=np.cumsum(stage_sizes)[:-1])
