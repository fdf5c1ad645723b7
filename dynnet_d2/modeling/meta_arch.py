"""What the shared layers need to know about a meta-architecture, declared once per
meta-architecture: the trainer asks these declarations instead of branching on the model's kind.

:class:`MetaArchitectureNeeds` holds the config key of its number of classes (checked against
the datasets' before training), how its training and test data are loaded, the dataset
``evaluator_type`` s it can be evaluated with (checked before training), whether
``TEST.VIS_NUM_IMAGES`` can draw its predictions, and where its class-count-shaped predictor is
and whether a checkpoint must already hold it shaped for the config (K-shot fine-tuning starts
from a checkpoint after surgery).
Detectron2's detectors are declared below; a new meta-architecture calls
:func:`declare_meta_architecture` next to its definition (``ImageClassifier`` does).
"""
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ..data.loaders import build_detection_loader_for_test, build_detection_loader_for_training

DETECTION_EVALUATORS = ("coco", "pascal_voc", "lvis")
#: State-dict prefix of Detectron2's box predictor (the last layer, which checkpoint surgery
#: rewrites).
BOX_PREDICTOR_PREFIX = "roi_heads.box_predictor."


#: How to make a checkpoint's box predictor fit a K-shot fine-tuning (TFA's checkpoint surgery).
RANDINIT_SURGERY_FIX = ("Turn the base model's predictor into one for all classes first: "
                        "tools/ckpt_surgery.py --method randinit --src1 <base model_final.pth> "
                        "--src-dataset <base training set> --tar-dataset <K-shot set> "
                        "(tools/ckpt_surgery.py --help)")


def _fine_tuning_a_k_shot_set(cfg) -> bool:
    return cfg.FEWSHOT.SHOT > 0


@dataclass(frozen=True)
class MetaArchitectureNeeds:
    """What a meta-architecture needs (see the module docstring).

    Attributes:
        class_count_key: dotted config key of its number of (thing) classes; None: no classes.
        build_train_loader: ``(cfg, dataset dicts) -> loader`` of its training data.
        build_test_loader: ``(cfg, dataset name) -> loader`` of a test set.
        evaluator_types: the dataset ``evaluator_type`` metadata it can be evaluated with.
        draws_predictions: ``TEST.VIS_NUM_IMAGES`` can draw its predictions.
        predictor_prefix: state-dict prefix of its class-count-shaped predictor.
        predictor_must_fit: ``cfg -> bool``: loading weights for training must find that
            predictor already shaped for the config's classes (else: run checkpoint surgery).
        predictor_fix: what the error says to do when it does not.
        check_before_test: ``(model, dataset name) -> None``, raising when the model cannot be
            evaluated on that test set (e.g. state it stores for other classes); None: no check.
        class_names_metadata: the datasets' metadata key of the class names counted by
            ``class_count_key`` (``thing_classes``; ``stuff_classes`` for semantic segmentation).
        reports_backbone_flops: its outputs hold ``"backbone_gflops"`` per image, averaged by the
            evaluation (:mod:`dynnet_d2.modeling.dynamic_meta_arch`).
        training_record_keys: keys every training record must have (checked before training).
    """

    class_count_key: Optional[str]
    build_train_loader: Callable[[object, List[dict]], Iterable] = \
        build_detection_loader_for_training
    build_test_loader: Callable[[object, str], Iterable] = build_detection_loader_for_test
    evaluator_types: Tuple[str, ...] = DETECTION_EVALUATORS
    draws_predictions: bool = True
    predictor_prefix: str = BOX_PREDICTOR_PREFIX
    predictor_must_fit: Callable[[object], bool] = _fine_tuning_a_k_shot_set
    predictor_fix: str = RANDINIT_SURGERY_FIX
    check_before_test: Optional[Callable[[object, str], None]] = None
    class_names_metadata: str = "thing_classes"
    reports_backbone_flops: bool = False
    training_record_keys: Tuple[str, ...] = ()


META_ARCHITECTURE_NEEDS: Dict[str, MetaArchitectureNeeds] = {
    "GeneralizedRCNN": MetaArchitectureNeeds("MODEL.ROI_HEADS.NUM_CLASSES"),
    "PanopticFPN": MetaArchitectureNeeds("MODEL.ROI_HEADS.NUM_CLASSES"),
    "RetinaNet": MetaArchitectureNeeds("MODEL.RETINANET.NUM_CLASSES"),
    "ProposalNetwork": MetaArchitectureNeeds(None),
    "SemanticSegmentor": MetaArchitectureNeeds(
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES", evaluator_types=("sem_seg",), draws_predictions=False,
        predictor_must_fit=lambda cfg: False, class_names_metadata="stuff_classes",
        training_record_keys=("sem_seg_file_name",)),
}


def declare_meta_architecture(name: str, needs: MetaArchitectureNeeds) -> None:
    """Declare what meta-architecture ``name`` (of Detectron2's ``META_ARCH_REGISTRY``) needs."""
    META_ARCHITECTURE_NEEDS[name] = needs


def meta_architecture_needs(cfg) -> MetaArchitectureNeeds:
    """The declaration of ``cfg``'s ``MODEL.META_ARCHITECTURE``; ``KeyError`` saying how to
    declare one nobody declared."""
    name = cfg.MODEL.META_ARCHITECTURE
    if name not in META_ARCHITECTURE_NEEDS:
        raise KeyError(
            f"MODEL.META_ARCHITECTURE={name!r}: dynnet_d2 does not know what it needs (its class "
            f"count key, loaders, evaluators); declare it with dynnet_d2.modeling.meta_arch."
            f"declare_meta_architecture({name!r}, MetaArchitectureNeeds(class_count_key="
            f"'MODEL.<...>.NUM_CLASSES', ...)) next to its definition")
    return META_ARCHITECTURE_NEEDS[name]


def is_classifier(cfg) -> bool:
    """Whether ``cfg``'s meta-architecture makes class predictions per image (is evaluated by a
    ``classification`` evaluator), e.g. ``ImageClassifier``."""
    return "classification" in meta_architecture_needs(cfg).evaluator_types
