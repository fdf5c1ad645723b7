"""``add_dynnet_config``: the one place where dynnet_d2 adds config keys to Detectron2's defaults.

Each topic (and, as they land, each method) has its own ``_add_<topic>_config(cfg)`` with a
comment per key, as Detectron2's ``projects/PointRend`` does with ``add_pointrend_config``.
"""
import os

import torch
from detectron2.config import CfgNode as CN


def default_device() -> str:
    """``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``: the default of ``MODEL.DEVICE``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _add_device_config(cfg: CN) -> None:
    # Detectron2's default is "cuda", which fails on a CPU machine; shipped configs leave the key
    # unset, so every config trains on the GPU when there is one. An explicit cpu/cuda wins.
    cfg.MODEL.DEVICE = default_device()


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


def add_dynnet_config(cfg: CN) -> CN:
    """Add every dynnet_d2 key (with its default) to ``cfg`` in place and return it."""
    _add_device_config(cfg)
    _add_datasets_config(cfg)
    _add_evaluation_config(cfg)
    _add_visualization_config(cfg)
    _add_mobilenet_config(cfg)
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


def load_config(config_file: str, opts=()) -> CN:
    """dynnet_d2's defaults, then ``config_file``, then the ``KEY VALUE`` list ``opts``.

    Raises ``FileNotFoundError`` naming ``config_file`` when it is not a file.
    """
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file {config_file!r} does not exist (or is not a file)")
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return cfg
