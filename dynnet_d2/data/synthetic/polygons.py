"""Instance masks as COCO polygons, and the area and box of the mask those polygons rasterise to."""
from typing import List, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def mask_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons of a binary mask, one per connected component, holes included.

    Contours are traced on the 2x nearest-upsampled mask (so that they run just inside the
    pixel edges and rasterise back to the same pixels) and simplified with a 0.3 px tolerance.
    A hole is joined to its outer contour by a zero-width "keyhole" bridge walked in both
    directions, which the even-odd fill of pycocotools / Detectron2 turns back into a hole.
    """
    k = 2
    up = cv2.resize(mask, (mask.shape[1] * k, mask.shape[0] * k), interpolation=cv2.INTER_NEAREST)
    contours, hier = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hier is None:
        return []
    hier = hier[0]

    def pts(c: np.ndarray) -> np.ndarray:
        c = cv2.approxPolyDP(c, 0.3 * k, True)
        return (c.reshape(-1, 2).astype(np.float64) + 0.5) / k

    polys = []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:
            continue
        outer = pts(c)
        if len(outer) < 3:
            continue
        seq = [outer, outer[:1]]
        child = hier[i][2]
        while child != -1:
            hole = pts(contours[child])
            if len(hole) >= 3:
                seq += [hole, hole[:1], outer[:1]]
            child = hier[child][0]
        polys.append(np.concatenate(seq).ravel().tolist())
    return polys


def polygon_mask_stats(polys: List[List[float]], h: int, w: int) -> Tuple[int, List[float]]:
    """Area (pixels) and COCO ``[x, y, w, h]`` box of the ``h`` x ``w`` mask that ``polys``
    rasterise to with pycocotools (as COCO evaluation and Detectron2 will see it)."""
    rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    return int(mask_utils.area(rle)), [float(v) for v in mask_utils.toBbox(rle)]
