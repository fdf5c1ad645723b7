"""``add_dynnet_config``: where dynnet_d2 adds its config keys to Detectron2's defaults.

Each shared topic has its own ``_add_<topic>_config(cfg)`` here, each method its
``add_<method>_config`` in its package (``dynnet_d2/methods/<method>/config.py``, registered with
:func:`register_method_config`), a comment per key, as Detectron2's ``projects/PointRend`` does
with ``add_pointrend_config``. Also: loading a config (:func:`load_config`) with the few-shot
placeholders ``{split}`` ``{shot}`` ``{seed}`` resolved.

May import: utils only (it is imported by every other part).
"""
import os
from typing import Callable, List, Sequence

import torch
from detectron2.config import CfgNode as CN


def default_device() -> str:
    """``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``: the default of ``MODEL.DEVICE``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _add_device_config(cfg: CN) -> None:
    # Detectron2's default is "cuda", which fails on a CPU machine; shipped configs leave the key
    # unset, so every config trains on the GPU when there is one. An explicit cpu/cuda wins.
    cfg.MODEL.DEVICE = default_device()


def _add_optimizer_config(cfg: CN) -> None:
    # The optimizer (DynnetTrainer.build_optimizer): "SGD" (Detectron2's, with SOLVER.MOMENTUM
    # and SOLVER.NESTEROV) or "ADAM" (torch.optim.Adam, default betas); both over Detectron2's
    # parameter groups (SOLVER.WEIGHT_DECAY*, SOLVER.BIAS_LR_FACTOR).
    cfg.SOLVER.OPTIMIZER = "SGD"


def _add_datasets_config(cfg: CN) -> None:
    # COCO-format datasets registered from the config, no code edits needed:
    # a list of [name, json_file, image_root]. The JSON is validated when registered.
    cfg.DATASETS.COCO_JSON_DATASETS = []
    # Pascal VOC folders registered from the config: a list of [name, folder, split, classes].
    # split: "" = every Annotations/*.xml, a name = ImageSets/Main/<name>.txt, or a .txt path;
    # classes: a list of names, or "" = the sorted names found in all of the folder's XMLs.
    cfg.DATASETS.VOC_DATASETS = []
    # Before training or evaluation, read the header of every image of DATASETS.TRAIN/TEST and
    # check that it exists and has the size its annotation records (False skips the check).
    cfg.DATASETS.CHECK_IMAGES = True
    # Partial mask supervision of DATASETS.TRAIN without registering a view (ShapeProp, thesis
    # ch. 8; dynnet_d2/data/partial_masks.py): only these classes keep their masks ([] = all).
    cfg.DATASETS.TRAIN_MASK_CLASSES = []
    # Only this fraction in (0, 1] of the training images keeps its masks (1.0 = all).
    cfg.DATASETS.TRAIN_MASK_FRACTION = 1.0
    # Seed of the images that keep their masks when TRAIN_MASK_FRACTION < 1.
    cfg.DATASETS.TRAIN_MASK_SEED = 0


def _add_evaluation_config(cfg: CN) -> None:
    # --eval-only without trained weights (MODEL.WEIGHTS empty, or a checkpoint lacking some of
    # the model's parameters) is an error unless this is True.
    cfg.TEST.ALLOW_UNTRAINED = False


def _add_visualization_config(cfg: CN) -> None:
    # Number of test images drawn with Detectron2's Visualizer into OUTPUT_DIR/visualizations
    # after evaluation (0 = none).
    cfg.TEST.VIS_NUM_IMAGES = 0
    # Score threshold for those drawings.
    cfg.TEST.VIS_SCORE_THRESH = 0.5


def _add_mobilenet_config(cfg: CN) -> None:
    # MobileNetV2 backbone (dynnet_d2/modeling/backbone/mobilenet.py).
    cfg.MODEL.MOBILENET = CN()
    # Stage outputs, named like ResNet's at the same strides:
    # res2 (4), res3 (8), res4 (16), res5 (32).
    cfg.MODEL.MOBILENET.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Channel width multiplier of torchvision's mobilenet_v2; ImageNet weights exist for 1.0 only.
    cfg.MODEL.MOBILENET.WIDTH_MULT = 1.0
    # "FrozenBN": BatchNorm fixed to the loaded (ImageNet) statistics; "BN": trained.
    cfg.MODEL.MOBILENET.NORM = "FrozenBN"


def _add_freeze_config(cfg: CN) -> None:
    # Freezing parts of a detector (dynnet_d2/modeling/freeze.py), with fsdet's keys.
    # Freeze the whole backbone (FPN included): no gradients, BatchNorm statistics fixed.
    cfg.MODEL.BACKBONE.FREEZE = False
    # Freeze the proposal generator (RPN).
    cfg.MODEL.PROPOSAL_GENERATOR.FREEZE = False
    # Freeze the box head (RoI feature extractor); with the two above only the box predictor
    # (last layer) trains, as in TFA's fine-tuning.
    cfg.MODEL.ROI_HEADS.FREEZE_FEAT = False


def _add_roi_align_config(cfg: CN) -> None:
    # The CPU backward of the ROI poolers' ROIAlign (dynnet_d2/modeling/roi_align.py):
    # "separable" (two matrix products where that is cheaper than torchvision's scatter; the
    # same gradient) or "torchvision" (Detectron2's ROIAlign as it is). CUDA is torchvision's.
    cfg.MODEL.ROI_ALIGN_CPU_BACKWARD = "separable"


def _add_box_predictor_config(cfg: CN) -> None:
    # Box predictor of ROI heads that build it from the box-predictor registry (e.g. TFA's
    # TFAROIHeads): "FastRCNNOutputLayers" (Detectron2's) or any name in
    # dynnet_d2.modeling.roi_heads.BOX_PREDICTOR_REGISTRY (TFA's "CosineSimOutputLayers").
    cfg.MODEL.ROI_HEADS.OUTPUT_LAYER = "FastRCNNOutputLayers"


def _add_cifar_resnet_config(cfg: CN) -> None:
    # CIFAR-style ResNet-(6n+2) (dynnet_d2/modeling/backbone/cifar_resnet.py): a 3x3 stem and
    # three stages (res2, res3, res4) of n basic blocks each, widths W, 2W, 4W.
    cfg.MODEL.CIFAR_RESNET = CN()
    # Depth 6n+2: 20, 38, 56, 74, 110, ...
    cfg.MODEL.CIFAR_RESNET.DEPTH = 38
    # Channels W of the stem and of the first stage.
    cfg.MODEL.CIFAR_RESNET.WIDTH = 16
    # Stride of the stem convolution (1 as in the CIFAR ResNets; 2 quarters the FLOPs).
    cfg.MODEL.CIFAR_RESNET.STEM_STRIDE = 1
    # Normalization of every convolution ("BN", "SyncBN", "GN", "FrozenBN", ...).
    cfg.MODEL.CIFAR_RESNET.NORM = "BN"
    # Stage outputs returned by the backbone (any of res2, res3, res4).
    cfg.MODEL.CIFAR_RESNET.OUT_FEATURES = ["res4"]


def _add_fewshot_config(cfg: CN) -> None:
    # Few-shot runs: the few-shot split, shots and seeds are overrides, not one config per shot.
    cfg.FEWSHOT = CN()
    # Few-shot split (base/novel partition) id; replaces "{split}" in DATASETS.TRAIN/TEST,
    # MODEL.WEIGHTS and OUTPUT_DIR.
    cfg.FEWSHOT.SPLIT = 1
    # K of the K-shot training set; replaces "{shot}" in the same keys.
    cfg.FEWSHOT.SHOT = 0
    # Which sampled K-shot set; replaces "{seed}" in the same keys.
    cfg.FEWSHOT.SEED = 0
    # True: SOLVER.MAX_ITER, SOLVER.STEPS and SOLVER.CHECKPOINT_PERIOD are per shot and get
    # multiplied by FEWSHOT.SHOT when the config is loaded (fsdet scaled schedules by K).
    cfg.FEWSHOT.SCHEDULE_PER_SHOT = False

    # Your own few-shot data, no code (dynnet_d2/data/fewshot/custom.py). With NAME set, registers
    # <NAME>_{train,test}_{all,base,novel} and <NAME>_train_{all,novel}_<K>shot_seed<N>.
    cfg.DATASETS.FEWSHOT = CN()
    # Prefix of the registered names; "" = no custom few-shot data.
    cfg.DATASETS.FEWSHOT.NAME = ""
    # Registered dataset (e.g. from DATASETS.COCO_JSON_DATASETS / VOC_DATASETS) with every class:
    # the base-training data and the pool the K-shot sets are drawn from.
    cfg.DATASETS.FEWSHOT.TRAIN = ""
    # Registered dataset to evaluate on, with the same classes as TRAIN.
    cfg.DATASETS.FEWSHOT.TEST = ""
    # Names of the novel classes; the other classes of TRAIN are the base classes.
    cfg.DATASETS.FEWSHOT.NOVEL_CLASSES = []
    # Shots K of the registered K-shot sets.
    cfg.DATASETS.FEWSHOT.SHOTS = [1, 2, 3, 5, 10]
    # Number of sampled K-shot sets per shot (seeds 0 .. SEEDS-1).
    cfg.DATASETS.FEWSHOT.SEEDS = 10
    # Where the split files go ("" = $DYNNET_DATASETS/fewshot/<NAME>/vocsplit); written on
    # first use, or beforehand with tools/prepare_fewshot_splits.py.
    cfg.DATASETS.FEWSHOT.SPLIT_DIR = ""



def _add_classification_config(cfg: CN) -> None:
    # ImageClassifier (dynnet_d2/modeling/classifier.py): backbone -> global average pooling ->
    # linear head; the base of SkipNet, IDK cascades, DeepMoE and TAFE-Net.
    cfg.MODEL.CLASSIFIER = CN()
    # Number of classes of the linear head (checked against the datasets' thing_classes).
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = 10
    # Backbone output that is pooled and classified; "" = the backbone's last output feature.
    cfg.MODEL.CLASSIFIER.IN_FEATURE = ""
    # Head on the pooled feature (dynnet_d2.modeling.classifier_heads.CLASSIFIER_HEAD_REGISTRY).
    cfg.MODEL.CLASSIFIER.HEAD = "LinearHead"
    # Train and evaluate the head from the frozen backbone's pooled features, computed once per
    # dataset and stored (dynnet_d2/engine/feature_cache.py); needs a frozen static backbone
    # and no training augmentation.
    cfg.MODEL.CLASSIFIER.CACHE_FEATURES = False
    # Folder of those caches ("" = $DYNNET_CACHE, else ~/.cache/dynnet_d2); files are keyed by
    # the backbone's weights, the input config and the dataset's records.
    cfg.MODEL.CLASSIFIER.CACHE_DIR = ""
    # Classification data (dynnet_d2/data/classification.py).
    cfg.INPUT.CLASSIFICATION = CN()
    # Training augmentation: random translation by up to this many pixels, zero padded (0 = none);
    # the horizontal flip is Detectron2's INPUT.RANDOM_FLIP.
    cfg.INPUT.CLASSIFICATION.SHIFT = 0
    # Side in pixels of the square instance crops of the shapes classification view (shapes_cls_*).
    cfg.INPUT.CLASSIFICATION.CROP_SIZE = 32
    # Images per batch of the classification test loader (Detectron2's detection test loader
    # always uses 1 and ignores this key).
    cfg.TEST.IMS_PER_BATCH = 64


# Each method's add_<method>_config (dynnet_d2/methods/<method>/config.py), registered when the
# method is imported (importing dynnet_d2 imports every method).
METHOD_CONFIGS: List[Callable[[CN], None]] = []


def register_method_config(add_config: Callable[[CN], None]) -> Callable[[CN], None]:
    """Have :func:`add_dynnet_config` call ``add_config`` (a method's ``add_<method>_config``)
    after the shared topics; returns it (usable as a decorator)."""
    if add_config not in METHOD_CONFIGS:
        METHOD_CONFIGS.append(add_config)
    return add_config


def add_dynnet_config(cfg: CN) -> CN:
    """Add every dynnet_d2 key (with its default) to ``cfg`` in place and return it: the shared
    topics', then each method's."""
    _add_device_config(cfg)
    _add_optimizer_config(cfg)
    _add_datasets_config(cfg)
    _add_evaluation_config(cfg)
    _add_visualization_config(cfg)
    _add_mobilenet_config(cfg)
    _add_cifar_resnet_config(cfg)
    _add_freeze_config(cfg)
    _add_roi_align_config(cfg)
    _add_box_predictor_config(cfg)
    _add_fewshot_config(cfg)
    _add_classification_config(cfg)
    for add_method_config in METHOD_CONFIGS:
        add_method_config(cfg)
    return cfg


def get_dynnet_cfg() -> CN:
    """Detectron2's default config with dynnet_d2's keys added."""
    from detectron2.config import get_cfg

    return add_dynnet_config(get_cfg())


def config_value(cfg: CN, key: str):
    """The value of the dotted ``key`` (e.g. ``"MODEL.ROI_HEADS.NUM_CLASSES"``) in ``cfg``."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


FEWSHOT_PLACEHOLDERS = {"{split}": "SPLIT", "{shot}": "SHOT", "{seed}": "SEED"}


def resolve_fewshot(cfg: CN) -> CN:
    """Put ``FEWSHOT.SPLIT``/``SHOT``/``SEED`` into the ``{split}``/``{shot}``/``{seed}`` of
    ``DATASETS.TRAIN``/``TEST``, ``MODEL.WEIGHTS`` and ``OUTPUT_DIR``, and scale the schedule by
    the shot with ``FEWSHOT.SCHEDULE_PER_SHOT`` (then set False), in place; return ``cfg``. A
    resolved config stays as it is, so the ``config.yaml`` a run writes loads again unchanged.
    """
    values = (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST, cfg.MODEL.WEIGHTS, cfg.OUTPUT_DIR)
    uses_shot = any("{shot}" in v for v in values) or cfg.FEWSHOT.SCHEDULE_PER_SHOT
    if uses_shot and cfg.FEWSHOT.SHOT < 1:
        raise ValueError("this config is for K-shot fine-tuning ({shot} in its dataset names, "
                         "weights or output folder, or FEWSHOT.SCHEDULE_PER_SHOT): set "
                         "FEWSHOT.SHOT to K >= 1, e.g. `FEWSHOT.SHOT 5 FEWSHOT.SEED 0`")

    def fill(value: str) -> str:
        for placeholder, key in FEWSHOT_PLACEHOLDERS.items():
            value = value.replace(placeholder, str(cfg.FEWSHOT[key]))
        return value

    cfg.DATASETS.TRAIN = tuple(fill(n) for n in cfg.DATASETS.TRAIN)
    cfg.DATASETS.TEST = tuple(fill(n) for n in cfg.DATASETS.TEST)
    cfg.MODEL.WEIGHTS = fill(cfg.MODEL.WEIGHTS)
    cfg.OUTPUT_DIR = fill(cfg.OUTPUT_DIR)
    if cfg.FEWSHOT.SCHEDULE_PER_SHOT:
        shot = cfg.FEWSHOT.SHOT
        cfg.SOLVER.MAX_ITER *= shot
        cfg.SOLVER.STEPS = tuple(step * shot for step in cfg.SOLVER.STEPS)
        cfg.SOLVER.CHECKPOINT_PERIOD *= shot
        cfg.FEWSHOT.SCHEDULE_PER_SHOT = False
    return cfg


def schedule_per_shot(config_file: str, opts: Sequence = ()) -> bool:
    """Whether ``config_file`` with ``opts`` scales its schedule by K
    (``FEWSHOT.SCHEDULE_PER_SHOT``, which :func:`load_config` resolves and then sets False)."""
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return bool(cfg.FEWSHOT.SCHEDULE_PER_SHOT)


def describe_schedule(cfg: CN, per_shot: bool) -> str:
    """The resolved schedule of ``cfg`` in words; ``per_shot``: its config scaled it by K."""
    total = cfg.SOLVER.MAX_ITER
    if not per_shot:
        return f"SOLVER.MAX_ITER {total} iterations"
    return (f"SOLVER.MAX_ITER {total} iterations = {total // cfg.FEWSHOT.SHOT} per shot x "
            f"{cfg.FEWSHOT.SHOT} shot(s) (a per-shot config, FEWSHOT.SCHEDULE_PER_SHOT: a "
            f"SOLVER.MAX_ITER override is per shot too; SOLVER.STEPS {tuple(cfg.SOLVER.STEPS)})")


def load_config(config_file: str, opts=()) -> CN:
    """dynnet_d2's defaults, then ``config_file``, then the ``KEY VALUE`` list ``opts``, then
    :func:`resolve_fewshot`.

    Raises ``FileNotFoundError`` naming ``config_file`` when it is not a file.
    """
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file {config_file!r} does not exist (or is not a file)")
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return resolve_fewshot(cfg)
