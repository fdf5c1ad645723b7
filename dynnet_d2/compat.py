"""What the installed Detectron2 and its evaluation libraries can and cannot do here.

The registry's Detectron2 wheel ships a ``_C`` extension built for CPython 3.10 that does
not load on other Pythons. Detectron2 then runs, but deformable convolution, the rotated
box ops and the fast (C++) COCOeval are missing. :func:`check_config_ops` turns a config
that asks for them into one clear error before any model is built; nothing in dynnet_d2
needs them.

May import: utils, config.
"""
import importlib
import types
from functools import lru_cache
from typing import Dict, List

import numpy as np

from .config import config_value

INSTALL_HINT = (
    "The installed Detectron2 has no compiled C++/CUDA extension (detectron2._C does not load "
    "on this Python). Install a compiled, official Detectron2 "
    "(pip install 'git+https://github.com/facebookresearch/detectron2.git' on a machine with "
    "a compiler, see Detectron2's INSTALL.md), or use a config without this op."
)


class UnavailableOpError(RuntimeError):
    """A config asks for an op that the installed Detectron2 cannot run."""


@lru_cache(maxsize=None)
def detectron2_c_extension_error() -> str:
    """Empty string if ``detectron2._C`` loads, else the reason it does not."""
    try:
        importlib.import_module("detectron2._C")
    except ImportError as e:
        return str(e) or type(e).__name__
    return ""


def has_compiled_detectron2() -> bool:
    """True when Detectron2's C++ extension is importable."""
    return detectron2_c_extension_error() == ""


def unavailable_ops() -> List[str]:
    """Names of Detectron2 features that need ``detectron2._C`` and are missing here."""
    if has_compiled_detectron2():
        return []
    return [
        "deformable convolution (DeformConv, ModulatedDeformConv)",
        "rotated boxes (nms_rotated, box_iou_rotated, ROIAlignRotated; RRPN, RROIHeads)",
        "Detectron2's C++ COCOeval (dynnet_d2's COCO evaluator uses faster-coco-eval instead: "
        "the same numbers as pycocotools, compiled)",
    ]


# Detectron2's backbones that implement MODEL.RESNETS.DEFORM_ON_PER_STAGE (ours reject it).
DEFORMABLE_BACKBONES = ("build_resnet_backbone", "build_resnet_fpn_backbone",
                        "build_retinanet_resnet_fpn_backbone")
# Config keys whose values ask for rotated-box ops.
ROTATED_OPS = {
    "MODEL.PROPOSAL_GENERATOR.NAME": ("RRPN",),
    "MODEL.ROI_HEADS.NAME": ("RROIHeads",),
    "MODEL.ANCHOR_GENERATOR.NAME": ("RotatedAnchorGenerator",),
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE": ("ROIAlignRotated",),
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE": ("ROIAlignRotated",),
}


def _ops_requested_by(cfg) -> Dict[str, str]:
    """Map each ``_C``-only op the config asks for to the config key that asks for it."""
    requested = {}
    if (any(cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE)
            and cfg.MODEL.BACKBONE.NAME in DEFORMABLE_BACKBONES):
        requested["deformable convolution"] = (
            f"MODEL.RESNETS.DEFORM_ON_PER_STAGE={list(cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE)}"
        )
    for key, names in ROTATED_OPS.items():
        value = config_value(cfg, key)
        if value in names:
            requested["rotated box ops"] = f"{key}={value}"
    return requested


def check_config_ops(cfg) -> None:
    """Raise :class:`UnavailableOpError` if ``cfg`` needs an op missing from this Detectron2."""
    if has_compiled_detectron2():
        return
    requested = _ops_requested_by(cfg)
    if requested:
        what = "; ".join(f"{op} (asked for by {key})" for op, key in requested.items())
        raise UnavailableOpError(f"This config needs {what}. {INSTALL_HINT}")


class _NumpyWithRemovedAliases(types.ModuleType):
    """A view of numpy that also has the aliases NumPy 1.24 removed (``np.float`` ...).

    Installed only as the ``np`` global of ``lvis.eval`` (lvis 0.5.3 calls
    ``astype(np.float)``), so user code never sees a patched numpy.
    """

    _ALIASES = {"float": float, "int": int, "bool": bool, "object": object}

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str):
        if name in self._ALIASES:
            return self._ALIASES[name]
        return getattr(np, name)


def fix_lvis_numpy2() -> bool:
    """Make ``lvis.eval.LVISEval`` run on NumPy >= 1.24; returns True if a fix was applied."""
    try:
        lvis_eval = importlib.import_module("lvis.eval")
    except ImportError:
        return False
    if hasattr(np, "float") or isinstance(lvis_eval.np, _NumpyWithRemovedAliases):
        return False
    lvis_eval.np = _NumpyWithRemovedAliases()
    return True


def read_label_png(path: str, dtype=int) -> np.ndarray:
    """A label map file as an array of ``dtype``: what Detectron2's ``SemSegEvaluator`` reads
    with ``load_image_into_numpy_array``, which passes ``copy=False`` to ``np.array`` and so
    fails on NumPy >= 2 (given to the evaluator as its ``sem_seg_loading_fn``)."""
    from detectron2.utils.file_io import PathManager
    from PIL import Image

    with PathManager.open(path, "rb") as f:
        return np.asarray(Image.open(f), dtype=dtype).copy()
