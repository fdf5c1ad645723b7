"""FSRW's few-shot sweep method and the base it starts from, declared to the sweep
(:mod:`dynnet_d2.engine.fewshot_methods`; the sweep imports no method):

* base ``fsrw_two_stage``: phase 1, ``configs/FSRW/meta_rcnn_MobileNetV2_FPN_base_2800it_shapes
  .yaml`` once per split; its ``model_final.pth`` is where phase 2 starts (no surgery: the
  reweighting predictor has no class-count-shaped weights);
* ``meta_rcnn`` (Meta R-CNN style two-stage reweighting): phase 2 on the K-shot set.
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


register_fewshot_base(FewShotBase(
    str(CONFIGS / "meta_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"), _no_surgery,
    check_phase_1_checkpoint), TWO_STAGE_BASE)
register_fewshot_method(FewShotMethod(
    "meta_rcnn", "Meta R-CNN (reweighting)",
    str(CONFIGS / "meta_rcnn_MobileNetV2_FPN_ft_all_100itxK_shapes.yaml"), "finetune",
    base=TWO_STAGE_BASE))
