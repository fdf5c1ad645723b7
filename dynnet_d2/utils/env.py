"""One datasets root for dynnet_d2's names and Detectron2's built-in ones.

dynnet_d2 reads ``$DYNNET_DATASETS``; Detectron2's built-in names (``coco_2017_train``,
``voc_2007_train``, ...) read ``$DETECTRON2_DATASETS`` once, when ``detectron2.data`` is first
imported. :func:`share_datasets_root` runs when ``dynnet_d2`` is imported, before it imports
Detectron2: whichever of the two variables is set (DYNNET_DATASETS first) is given to the other,
so one variable governs both. Nothing here imports Detectron2.
"""
import os
import sys
import warnings

DYNNET_VARIABLE = "DYNNET_DATASETS"
DETECTRON2_VARIABLE = "DETECTRON2_DATASETS"
DEFAULT_ROOT = "datasets"


def datasets_root() -> str:
    """``$DYNNET_DATASETS``, else ``$DETECTRON2_DATASETS``, else ``datasets`` (relative)."""
    return os.environ.get(DYNNET_VARIABLE) or os.environ.get(DETECTRON2_VARIABLE) or DEFAULT_ROOT


def share_datasets_root() -> None:
    """Set ``$DETECTRON2_DATASETS`` from ``$DYNNET_DATASETS`` when only the latter is set; warn
    when Detectron2 registered its built-in names before this could happen."""
    root = os.environ.get(DYNNET_VARIABLE)
    if not root or os.environ.get(DETECTRON2_VARIABLE):
        return
    if "detectron2.data.datasets.builtin" in sys.modules:
        warnings.warn(
            f"{DYNNET_VARIABLE}={root} but Detectron2's built-in datasets (coco_*, voc_*, lvis_*) "
            f"were registered before dynnet_d2 was imported and read ./{DEFAULT_ROOT}; import "
            f"dynnet_d2 first or set {DETECTRON2_VARIABLE}={root} too.", stacklevel=3)
    os.environ[DETECTRON2_VARIABLE] = root
