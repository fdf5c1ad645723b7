"""Detectron2's ``COCOEvaluator``, correct on COCO files whose annotation ids start at 0.

pycocotools' matcher records "matched to ground truth id g" and treats ``g == 0`` as "not
matched", so with a ground-truth annotation of id 0 every detection of that object counts as a
false positive (seen: AP50 94.9 instead of 100 for perfect predictions). Duplicate ids break its
index the same silently. Such files are common; here the evaluator's in-memory copy of the ground
truth is renumbered 1..N when needed (the user's file is never touched) and the log says so.
"""
import contextlib
import io
import logging
from collections import Counter

from detectron2.evaluation import COCOEvaluator
from pycocotools.coco import COCO

logger = logging.getLogger(__name__)


def renumber_annotation_ids(coco: COCO, source: str = "") -> bool:
    """Renumber ``coco``'s annotations 1..N in place if any id is 0 or repeated; return whether
    it did. ``source`` names the file in the log message."""
    annotations = coco.dataset.get("annotations", [])
    ids = Counter(a["id"] for a in annotations)
    if 0 not in ids and all(count == 1 for count in ids.values()):
        return False
    for new_id, annotation in enumerate(annotations, start=1):
        annotation["id"] = new_id
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    why = "include 0" if 0 in ids else "are not unique"
    logger.warning(
        f"Annotation ids of {source or 'the ground truth'} {why}, which pycocotools mis-scores; "
        f"evaluating on a copy renumbered 1..{len(annotations)} (the file is unchanged)."
    )
    return True


class DynnetCOCOEvaluator(COCOEvaluator):
    """``COCOEvaluator`` whose ground truth has annotation ids pycocotools can score."""

    def __init__(self, dataset_name: str, *args, **kwargs):
        super().__init__(dataset_name, *args, **kwargs)
        renumber_annotation_ids(self._coco_api, self._metadata.json_file)
