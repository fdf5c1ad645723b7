"""TFA's config keys: the cosine classifier's scale and the feature cache of the last-layer
fine-tuning (``FEWSHOT.CACHE``), registered into :func:`dynnet_d2.config.add_dynnet_config`."""
from detectron2.config import CfgNode as CN

from ...config import register_method_config


@register_method_config
def add_tfa_config(cfg: CN) -> None:
    # TFA (thesis ch. 7) with fsdet's keys, so fsdet configs carry over (the freeze keys and
    # MODEL.ROI_HEADS.OUTPUT_LAYER are shared: dynnet_d2/config.py).
    # Scale alpha of the cosine classifier (Eq. 7.2): 20 in the thesis; -1 = learnable (from 20).
    cfg.MODEL.ROI_HEADS.COSINE_SCALE = 20.0
    # Cached last-layer fine-tuning (dynnet_d2/methods/tfa/cache/): when everything but the box
    # predictor is frozen, proposals and box-head features are computed once per image and
    # augmentation (and once per test set) and only the predictor runs in each iteration.
    cfg.FEWSHOT.CACHE = CN()
    # Use the cached path whenever the config freezes backbone, RPN and box head; False = always
    # the full model.
    cfg.FEWSHOT.CACHE.ENABLED = True
    # Folder of the cache files, shared by runs and processes ("" = $DYNNET_CACHE, else
    # ~/.cache/dynnet_d2); files are keyed by the frozen weights, the config and the data.
    cfg.FEWSHOT.CACHE.DIR = ""
    # Largest cache (one training set or one test set) held in memory, in MiB; a larger estimate
    # is an error before anything is computed.
    cfg.FEWSHOT.CACHE.MAX_MEMORY_MB = 4096
    # Storage type of the cached features: "float32" (exact) or "float16" (half the memory).
    cfg.FEWSHOT.CACHE.DTYPE = "float32"
