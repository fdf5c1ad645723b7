"""Support examples of FSRW (thesis ch. 6, "Learning Scheme" and "Reweight module input"):
which (image, box) pairs feed the reweighting module, and the tensor each one becomes.

:class:`SupportPool` indexes every instance of every class of a dataset (for phase 2, a K-shot
set: exactly its K instances per class, never K images). An episode draws one support instance
per class (or, for the single-binary loss, one instance of one class) with
``numpy.random.default_rng([seed, iteration])``, so it depends on the seed and the
iteration only: the same in every DDP process and after a resume.

:func:`support_input` makes one support ``(C_in, S, S)``: a square window centred on the box,
``context`` times its longer side, resized to ``S x S`` (outside the image: zeros, i.e. the
pixel mean once normalised), with the forms of ``MODEL.FSRW.SUPPORT_INPUT`` stacked in the order
image, mask (1 inside the box), object (the box alone resized to ``S x S``).
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from detectron2.data.detection_utils import read_image
from detectron2.structures import BoxMode
from torchvision.ops import roi_align

from .reweighting import support_channels


class SupportError(ValueError):
    """A support set that cannot be used; raised before any training."""


def read_image_tensor(file_name: str, image_format: str) -> torch.Tensor:
    """The image file as a ``(C, H, W)`` uint8 tensor in ``image_format`` (the model's input
    layout)."""
    image = read_image(file_name, format=image_format)
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))


def box_xyxy(annotation: dict) -> Tuple[float, float, float, float]:
    return tuple(float(v) for v in BoxMode.convert(list(annotation["bbox"]),
                                                     annotation["bbox_mode"], BoxMode.XYXY_ABS))


class SupportPool:
    """Every instance of classes ``0 .. num_classes - 1`` in ``dataset_dicts`` of dataset
    ``name`` (classes named ``class_names``), checked: every class has one, every box lies
    inside its image and has a positive size."""

    def __init__(self, dataset_dicts: Sequence[dict], class_names: Sequence[str], name: str):
        self.class_names, self.name = list(class_names), name
        self.instances: List[List[Tuple[dict, dict]]] = [[] for _ in class_names]
        for record in dataset_dicts:
            for annotation in record.get("annotations", []):
                if annotation.get("iscrowd", 0):
                    continue
                x0, y0, x1, y1 = box_xyxy(annotation)
                if not (0 <= x0 < x1 <= record["width"] and 0 <= y0 < y1 <= record["height"]):
                    raise SupportError(
                        f"{name}: support box {[x0, y0, x1, y1]} of {record['file_name']} is "
                        f"not inside its {record['width']}x{record['height']} image (expected "
                        f"0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height)")
                self.instances[annotation["category_id"]].append((record, annotation))
        empty = [c for c, found in zip(self.class_names, self.instances) if not found]
        if empty:
            raise SupportError(f"{name}: no support example of class(es) {empty}; every class "
                               f"of the episode needs at least one instance")

    def counts(self) -> Dict[str, int]:
        return {c: len(found) for c, found in zip(self.class_names, self.instances)}

    def episode(self, seed: int, iteration: int) -> List[Tuple[dict, dict]]:
        """One ``(record, annotation)`` per class, drawn from ``(seed, iteration)`` alone."""
        rng = np.random.default_rng([seed, iteration])
        return [found[int(rng.integers(len(found)))] for found in self.instances]

    def one_class_episode(self, seed: int, iteration: int) -> Tuple[int, Tuple[dict, dict]]:
        """One class and one ``(record, annotation)`` of it, drawn from ``(seed, iteration)``
        alone (the single-binary loss of Table 6.5)."""
        rng = np.random.default_rng([seed, iteration])
        cls = int(rng.integers(len(self.instances)))
        found = self.instances[cls]
        return cls, found[int(rng.integers(len(found)))]


def support_input(image: torch.Tensor, box: Sequence[float], forms: Sequence[str], size: int,
                  context: float) -> torch.Tensor:
    """One support: ``image`` ``(3, H, W)`` (normalised), ``box`` ``(x0, y0, x1, y1)`` in its
    pixels -> ``(C_in, size, size)`` (see the module docstring)."""
    support_channels(forms)
    if context < 1.0:
        raise SupportError(f"MODEL.FSRW.SUPPORT_CONTEXT={context}: expected >= 1 (the window "
                           f"around the box, in multiples of its longer side)")
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, context * max(x1 - x0, y1 - y0) / 2
    window = (cx - half, cy - half, cx + half, cy + half)
    image = image.float()[None]

    def crop(region):
        rois = torch.tensor([[0.0, *region]], dtype=image.dtype, device=image.device)
        return roi_align(image, rois, (size, size), sampling_ratio=2, aligned=True)[0]

    parts = []
    for form in forms:
        if form == "image":
            parts.append(crop(window))
        elif form == "mask":
            # pixel centres of the window's grid that fall inside the box
            step = 2 * half / size
            centres = torch.arange(size, dtype=image.dtype, device=image.device) + 0.5
            xs, ys = window[0] + centres * step, window[1] + centres * step
            inside_x = (xs >= x0) & (xs <= x1)
            inside_y = (ys >= y0) & (ys <= y1)
            parts.append((inside_y[:, None] & inside_x[None, :]).to(image.dtype)[None])
        else:
            parts.append(crop((x0, y0, x1, y1)))
    return torch.cat(parts)
