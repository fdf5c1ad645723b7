"""FSRW's few-shot sweep method and the base it starts from, declared to the sweep
(:mod:`dynnet_d2.engine.fewshot_methods`; the sweep imports no method):

* bases ``fsrw_one_stage`` and ``fsrw_two_stage``: phase 1, ``configs/FSRW/fsrw_MobileNetV2_FPN_
  base_2800it_shapes.yaml`` and ``meta_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml``, once per
  split; its ``model_final.pth`` is where phase 2 starts (:func:`.surgery.phase_2_start`: as it
  is for the shared class scorer, whose weights are not shaped by the class count; the per-class
  predictor, ``CLASS_SCORER per_class``, gets rows for the novel classes first);
* ``fsrw`` (the thesis' one-stage detector) and ``meta_rcnn`` (Meta R-CNN style two-stage):
  phase 2 on the K-shot set;
* their ablations, each from its own phase 1 (base ``<base>_<suffix>``): ``fsrw_singlebinary``,
  ``fsrw_multibinary`` (the class loss, Table 6.5), ``fsrw_backbone`` (the detector's backbone,
  shared, as the reweighting module), ``fsrw_p3``, ``fsrw_p5``, ``fsrw_half``,
  ``meta_rcnn_half`` (which feature, and half of its channels, is reweighted: Table 6.4),
  ``meta_rcnn_image``, ``meta_rcnn_imageobject``, ``meta_rcnn_imagemaskobject`` (the support's
  form, Table 6.6).
"""
from pathlib import Path

from ...engine.checkpoint import read_checkpoint_file
from ...engine.fewshot_methods import (
    FewShotBase,
    FewShotMethod,
    register_fewshot_base,
    register_fewshot_method,
)
from .surgery import phase_2_start

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "FSRW"
TWO_STAGE_BASE = "fsrw_two_stage"
ONE_STAGE_BASE = "fsrw_one_stage"
CLASS_VECTORS_KEY = "class_vectors.key"  # the buffer every reweighting predictor holds


def check_phase_1_checkpoint(path: str, base_set: str, what: str, whose: str) -> None:
    """``path`` holds a reweighting detector (stored class vectors, of either detector)."""
    state = read_checkpoint_file(path, what)["model"]
    if not any(key.endswith(CLASS_VECTORS_KEY) for key in state):
        raise ValueError(f"{what}: {path!r} is not a phase-1 model of a reweighting detector "
                         f"({whose}, {base_set}): it has no {CLASS_VECTORS_KEY!r}")


# (detector, name suffix) -> label: the detector of configs/FSRW/<detector>[_<suffix>]_MobileNetV2
# _FPN_*.yaml, "" the thesis' choices, the others its ablations (each with its own phase 1)
VARIANTS = {
    ("fsrw", ""): "FSRW (one-stage reweighting)",
    ("fsrw", "singlebinary"): "FSRW, single-binary class loss",
    ("fsrw", "multibinary"): "FSRW, multi-binary class loss",
    ("fsrw", "p3"): "FSRW, p3 reweighted",
    ("fsrw", "p5"): "FSRW, p5 reweighted",
    ("fsrw", "half"): "FSRW, half of the channels reweighted",
    ("fsrw", "backbone"): "FSRW, the backbone (shared) as reweighting module",
    ("meta_rcnn", ""): "Meta R-CNN (reweighting)",
    ("meta_rcnn", "image"): "Meta R-CNN, support: image only",
    ("meta_rcnn", "imageobject"): "Meta R-CNN, support: image + object crop",
    ("meta_rcnn", "imagemaskobject"): "Meta R-CNN, support: image + mask + object crop",
    ("meta_rcnn", "half"): "Meta R-CNN, half of the channels reweighted",
}
BASES = {"fsrw": ONE_STAGE_BASE, "meta_rcnn": TWO_STAGE_BASE}
for (_detector, _suffix), _label in VARIANTS.items():
    _infix = f"_{_suffix}" if _suffix else ""
    _base = BASES[_detector] + _infix
    register_fewshot_base(FewShotBase(
        str(CONFIGS / f"{_detector}{_infix}_MobileNetV2_FPN_base_2800it_shapes.yaml"),
        phase_2_start, check_phase_1_checkpoint), _base)
    register_fewshot_method(FewShotMethod(
        f"{_detector}{_infix}", _label,
        str(CONFIGS / f"{_detector}{_infix}_MobileNetV2_FPN_ft_all_100itxK_shapes.yaml"),
        "finetune", base=_base))
