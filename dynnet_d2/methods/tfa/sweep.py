"""TFA's few-shot sweep methods (thesis Table 7.2's rows) and how they start, declared to the
sweep (:mod:`dynnet_d2.engine.fewshot_methods`; the sweep imports no method):

* ``cos`` (TFA w/ cos), ``fc`` (TFA w/ fc), ``full`` (FRCN+ft-full): fine-tuned from the split's
  base model after randinit surgery; ``joint`` (FRCN+joint): trained on base data plus the novel
  shots from ImageNet; ``base_only``: the surgery checkpoint evaluated with the FC head the base
  model was trained with (the cosine head would drop the FC classifier's bias);
* the base: ``configs/TFA/faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml``, randinit
  surgery (:func:`~.pipeline.randinit_surgery`), and a named base checkpoint must score the base
  classes (not a surgery output or a fine-tuned model).
"""
from pathlib import Path

from ...engine.fewshot_methods import (
    FewShotBase,
    FewShotMethod,
    register_fewshot_base,
    register_fewshot_method,
)
from ...modeling.meta_arch import BOX_PREDICTOR_PREFIX
from ...utils.io import ensure_writable_dir
from .pipeline import randinit_surgery
from .surgery import dataset_classes, load_checkpoint

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "TFA"
BASE_CONFIG = CONFIGS / "faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"
SURGERY_FILE = "model_reset_surgery.pth"  # randinit_surgery's output beside the base model


def check_base_checkpoint(path: str, base_set: str, what: str, whose: str) -> None:
    """``path`` has the box predictor of ``base_set``'s classes (+ background), and its surgery
    output exists or can be written beside it; ``ValueError`` naming ``what`` else (``whose``:
    the base model's split, e.g. "split 1")."""
    expected = len(dataset_classes(base_set)) + 1
    state = load_checkpoint(path, what)["model"]
    scores = state.get(BOX_PREDICTOR_PREFIX + "cls_score.weight")
    if scores is None or scores.shape[0] != expected:
        found = "no box classifier" if scores is None else f"{scores.shape[0]} score rows"
        raise ValueError(
            f"{what}: {found}, but a base model of {whose} scores the {expected - 1} classes of "
            f"{base_set} and background ({expected} rows). Name the base training's "
            f"model_final.pth (not a surgery output or a fine-tuned model)")
    if not (Path(path).parent / SURGERY_FILE).is_file():
        ensure_writable_dir(Path(path).parent, f"{what} (its surgery output {SURGERY_FILE} goes "
                                               f"beside it)")


def _surgery(checkpoint: str, base_set: str, all_set: str) -> str:
    return str(randinit_surgery(checkpoint, base_set, all_set))


for _method in (
        FewShotMethod("cos", "TFA w/ cos",
                      str(CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"),
                      "finetune"),
        FewShotMethod("fc", "TFA w/ fc",
                      str(CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_fc_all_100itxK_shapes.yaml"),
                      "finetune"),
        FewShotMethod("full", "FRCN+ft-full",
                      str(CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_full_all_100itxK_shapes.yaml"),
                      "finetune"),
        FewShotMethod("joint", "FRCN+joint",
                      str(CONFIGS / "faster_rcnn_MobileNetV2_FPN_joint_2800it_shapes.yaml"),
                      "joint"),
        FewShotMethod("base_only", "Base only",
                      str(CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_fc_all_100itxK_shapes.yaml"),
                      "base_only")):
    register_fewshot_method(_method)
register_fewshot_base(FewShotBase(str(BASE_CONFIG), _surgery, check_base_checkpoint))
