"""FSRW's few-shot sweep method and the base it starts from, declared to the sweep
(:mod:`dynnet_d2.engine.fewshot_methods`; the sweep imports no method):

* base ``fsrw_two_stage``: phase 1, ``configs/FSRW/meta_rcnn_MobileNetV2_FPN_base_2800it_shapes
  .yaml`` once per split; its ``model_final.pth`` is where phase 2 starts (no surgery: the
  reweighting predictor has no class-count-shaped weights);
* ``meta_rcnn`` (Meta R-CNN style two-stage reweighting): phase 2 on the K-shot set;
* its ablations ``meta_rcnn_image``, ``meta_rcnn_imageobject``, ``meta_rcnn_imagemaskobject``
  (the support's form, Table 6.6) and ``meta_rcnn_half`` (half of the channels reweighted, Table
  6.4), each from its own phase 1 (base ``fsrw_two_stage_<suffix>``).
"""
from pathlib import Path

import torch

from ...engine.checkpoint import PREDICTOR_PREFIX
from ...engine.fewshot_methods import (
    FewShotBase,
    FewShotMethod,
    register_fewshot_base,
    register_fewshot_method,
)

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "FSRW"
TWO_STAGE_BASE = "fsrw_two_stage"


def _no_surgery(checkpoint: str, base_set: str, all_set: str) -> str:
    return checkpoint


def check_phase_1_checkpoint(path: str, base_set: str, what: str, whose: str) -> None:
    """``path`` holds a reweighting detector (its predictor's background scorer)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what}: {path!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True).get("model", {})
    except Exception as e:  # any failure means: not a checkpoint we can read
        raise ValueError(f"{what}: {path!r} is not a checkpoint PyTorch can load "
                         f"({type(e).__name__})") from e
    if PREDICTOR_PREFIX + "background_score.weight" not in state:
        raise ValueError(f"{what}: not a phase-1 model of the reweighting detector ({whose}, "
                         f"{base_set}): its box predictor has no background_score")


# name suffix -> label: the detector of configs/FSRW/meta_rcnn[_<suffix>]_MobileNetV2_FPN_*.yaml,
# "" the thesis' choices, the others its ablations (each with its own phase 1)
VARIANTS = {
    "": "Meta R-CNN (reweighting)",
    "image": "Meta R-CNN, support: image only",
    "imageobject": "Meta R-CNN, support: image + object crop",
    "imagemaskobject": "Meta R-CNN, support: image + mask + object crop",
    "half": "Meta R-CNN, half of the channels reweighted",
}
for _suffix, _label in VARIANTS.items():
    _infix = f"_{_suffix}" if _suffix else ""
    _base = TWO_STAGE_BASE + (f"_{_suffix}" if _suffix else "")
    register_fewshot_base(FewShotBase(
        str(CONFIGS / f"meta_rcnn{_infix}_MobileNetV2_FPN_base_2800it_shapes.yaml"), _no_surgery,
        check_phase_1_checkpoint), _base)
    register_fewshot_method(FewShotMethod(
        f"meta_rcnn{_infix}", _label,
        str(CONFIGS / f"meta_rcnn{_infix}_MobileNetV2_FPN_ft_all_100itxK_shapes.yaml"),
        "finetune", base=_base))
