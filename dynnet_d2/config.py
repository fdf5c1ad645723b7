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
    return cfg


def get_dynnet_cfg() -> CN:
    """Detectron2's default config with dynnet_d2's keys added."""
    from detectron2.config import get_cfg

    return add_dynnet_config(get_cfg())
