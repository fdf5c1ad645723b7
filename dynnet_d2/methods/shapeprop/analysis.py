"""What the ShapeProp benchmark measures besides AP (thesis Sec. 8.4): the quality of the shape
prior (Fig. 8.9), pictures of held-out-class instances (Fig. 8.8), and cost.

* :func:`best_overlap`: the best-overlap metric of Sec. 8.4,
  ``max over theta, T_i of IoU(M >= theta, T_i)``, of probability maps M (N, H, W) against the
  ground-truth masks T (K, H, W) of the image, over thresholds theta in (0, 1). Each map is
  divided by its maximum first: the thesis calls the metric robust to the range of the values,
  and a saliency map whose probabilities all lie below the lowest threshold would otherwise
  score 0 whatever its shape.
* :func:`given_box_maps`: a trained model's saliency, Shape Activation and mask for every
  ground-truth box of a test image (Detectron2's ``forward_with_given_boxes``, so the shape prior
  is judged without detection errors), pasted into the image (H, W) as probabilities.
* :func:`plot_best_overlap`, :func:`plot_instances`: the two figures.
"""
from typing import Dict, Iterable, List, Mapping, Sequence

import numpy as np
import torch
from detectron2.layers import paste_masks_in_image
from detectron2.structures import Instances

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 1.0, 0.05))
# COCO's object sizes (square pixels of the mask at the model's input resolution).
SIZE_BINS = (("small", 0, 32 ** 2), ("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, float("inf")))


def best_overlap(probabilities: torch.Tensor, gt_masks: torch.Tensor,
                 thresholds: Sequence[float] = THRESHOLDS) -> torch.Tensor:
    """(N,) best overlap of each map in ``probabilities`` (N, H, W) with the masks ``gt_masks``
    (K, H, W): the largest IoU of ``map / max(map) >= theta`` with any mask over
    ``thresholds``."""
    if gt_masks.shape[0] == 0:
        return probabilities.new_zeros(probabilities.shape[0])
    theta = torch.as_tensor(thresholds, dtype=probabilities.dtype)
    scaled = probabilities / probabilities.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)
    binary = (scaled[:, None] >= theta[None, :, None, None]).flatten(2).float()
    gt = gt_masks.flatten(1).float()
    inter = binary @ gt.T  # (N, T, K)
    union = binary.sum(-1, keepdim=True) + gt.sum(-1) - inter
    return (inter / union.clamp(min=1)).flatten(1).max(dim=1).values


@torch.inference_mode()
def given_box_maps(model, mapped: Dict) -> Dict[str, torch.Tensor]:
    """Maps of ``model`` (eval mode) for the ground-truth boxes of one mapped training-style
    record (``image``, ``instances`` with ``gt_boxes``, ``gt_classes``, ``gt_masks``): pasted
    probabilities (N, H, W) ``mask`` and, for ShapeProp, ``saliency`` and ``shape``; ``gt``
    (N, H, W) bool, ``classes`` (N,), ``boxes`` (N, 4); at the input's resolution."""
    gt: Instances = mapped["instances"]
    images = model.preprocess_image([mapped])
    features = model.backbone(images.tensor)
    boxes = gt.gt_boxes.to(images.tensor.device)
    given = Instances(gt.image_size, pred_boxes=boxes,
                      pred_classes=gt.gt_classes.to(images.tensor.device))
    out = model.roi_heads.forward_with_given_boxes(features, [given])[0]
    maps = {"mask": out.pred_masks[:, 0]}
    for field, name in (("pred_saliency", "saliency"), ("pred_shape", "shape")):
        if out.has(field):
            maps[name] = out.get(field)
    pasted = {name: paste_masks_in_image(m, boxes, gt.image_size, threshold=-1).float() / 255
              for name, m in maps.items()}
    return {**{k: v.cpu() for k, v in pasted.items()}, "gt": gt.gt_masks.tensor.bool(),
            "classes": gt.gt_classes, "boxes": gt.gt_boxes.tensor}


def overlap_by_instance(model, records: Iterable[Dict], classes: Sequence[int],
                        maps: Sequence[str] = ("saliency", "shape", "mask")) -> Dict[str, list]:
    """Over ``records`` (mapped, :func:`given_box_maps`), the instances of ``classes``: their
    mask area (pixels) and the best overlap of each of ``maps`` with the image's masks."""
    rows: Dict[str, list] = {"area": [], **{m: [] for m in maps}}
    for mapped in records:
        out = given_box_maps(model, mapped)
        keep = torch.isin(out["classes"], torch.as_tensor(list(classes)))
        if not keep.any():
            continue
        rows["area"] += out["gt"][keep].flatten(1).sum(1).tolist()
        for m in maps:
            rows[m] += best_overlap(out[m][keep], out["gt"]).tolist()
    return rows


def summarize_by_size(rows: Mapping[str, list]) -> Dict[str, Dict[str, float]]:
    """Mean best overlap of every map per COCO size bin (and "all"), with instance counts."""
    area = np.asarray(rows["area"])
    bins = [("all", -1, float("inf"))] + list(SIZE_BINS)
    summary = {}
    for name, low, high in bins:
        sel = (area >= low) & (area < high)
        summary[name] = {"instances": int(sel.sum()), **{
            m: round(float(np.mean(np.asarray(v)[sel])), 4) if sel.any() else None
            for m, v in rows.items() if m != "area"}}
    return summary


def plot_best_overlap(rows: Mapping[str, list], maps: Mapping[str, str], path: str,
                      title: str) -> None:
    """Fig. 8.9: density of (object size, best overlap), one panel per ``maps`` entry
    (row key -> panel title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = np.sqrt(np.asarray(rows["area"]))
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 3.6), sharey=True)
    for ax, (key, label) in zip(np.atleast_1d(axes), maps.items()):
        overlap = np.asarray(rows[key])
        ax.hexbin(size, overlap, gridsize=24, extent=(0, max(size.max(), 1), 0, 1), mincnt=1,
                  cmap="viridis")
        ax.set_title(f"{label}: mean {overlap.mean():.3f}", fontsize=9)
        ax.set_xlabel("object size (sqrt of mask area, px)")
        ax.set_ylim(0, 1)
    np.atleast_1d(axes)[0].set_ylabel("best overlap (IoU)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_instances(panels: List[Dict[str, np.ndarray]], columns: Mapping[str, str], path: str,
                   title: str) -> None:
    """Fig. 8.8: one row per instance; ``columns`` maps a panel key to its title; ``"image"``
    is an (h, w, 3) uint8 crop with the box drawn, the others (h, w) maps in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), len(columns),
                             figsize=(1.7 * len(columns), 1.7 * len(panels) + 0.4), squeeze=False)
    for row, panel in zip(axes, panels):
        for ax, (key, label) in zip(row, columns.items()):
            ax.imshow(panel[key], vmin=0, vmax=1, cmap=None if key == "image" else "magma")
            ax.set_xticks([])
            ax.set_yticks([])
            if ax in axes[0]:
                ax.set_title(label, fontsize=8)
        row[0].set_ylabel(panel.get("label", ""), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

