"""``add_dynnet_config``: the one place where dynnet_d2 adds config keys to Detectron2's defaults."""
from detectron2.config import CfgNode as CN


def add_dynnet_config(cfg: CN) -> CN:
    """Add every dynnet_d2 key (with its default) to ``cfg`` in place and return it."""
    # COCO-format datasets registered from the config, no code edits needed:
    # a list of (name, json_file, image_root). The JSON is validated when registered.
    cfg.DATASETS.COCO_JSON_DATASETS = ()
    # Number of test images drawn with Detectron2's Visualizer into OUTPUT_DIR/visualizations
    # after evaluation (0 = none).
    cfg.TEST.VIS_NUM_IMAGES = 0
    # Score threshold for those drawings.
    cfg.TEST.VIS_SCORE_THRESH = 0.5

    # MobileNetV2 backbone (dynnet_d2/modeling/backbone/mobilenet.py).
    cfg.MODEL.MOBILENET = CN()
    # Stage outputs, named like ResNet's at the same strides: res2 (4), res3 (8), res4 (16), res5 (32).
    cfg.MODEL.MOBILENET.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Channel width multiplier of torchvision's mobilenet_v2; ImageNet weights exist for 1.0 only.
    cfg.MODEL.MOBILENET.WIDTH_MULT = 1.0
    # "FrozenBN": BatchNorm fixed to the loaded (ImageNet) statistics; "BN": trained.
    cfg.MODEL.MOBILENET.NORM = "FrozenBN"
    return cfg


def get_dynnet_cfg() -> CN:
    """Detectron2's default config with dynnet_d2's keys added."""
    from detectron2.config import get_cfg

    return add_dynnet_config(get_cfg())
