"""Which config key holds the number of object classes, per meta-architecture.

The check that a dataset's classes fit the model (``dynnet_d2.data.build``) reads the key of the
configured ``MODEL.META_ARCHITECTURE``. A meta-architecture whose class count lives elsewhere
registers its key with :func:`register_class_count_key` next to its definition.
"""
from typing import Dict, Optional

from detectron2.config import CfgNode

# META_ARCHITECTURE -> dotted config key of its number of (thing) classes; None: class-agnostic.
CLASS_COUNT_KEYS: Dict[str, Optional[str]] = {
    "GeneralizedRCNN": "MODEL.ROI_HEADS.NUM_CLASSES",
    "PanopticFPN": "MODEL.ROI_HEADS.NUM_CLASSES",
    "RetinaNet": "MODEL.RETINANET.NUM_CLASSES",
    "ProposalNetwork": None,
}


def register_class_count_key(meta_architecture: str, key: Optional[str]) -> None:
    """Declare that ``meta_architecture`` reads its class count from config ``key``."""
    CLASS_COUNT_KEYS[meta_architecture] = key


def class_count_key(cfg: CfgNode) -> Optional[str]:
    """The class-count key of ``cfg``'s meta-architecture; None when it has none.

    Raises ``KeyError`` for a meta-architecture nobody declared a key for.
    """
    meta_architecture = cfg.MODEL.META_ARCHITECTURE
    if meta_architecture not in CLASS_COUNT_KEYS:
        raise KeyError(
            f"MODEL.META_ARCHITECTURE={meta_architecture!r}: dynnet_d2 does not know which config "
            f"key holds its number of classes; declare it with "
            f"dynnet_d2.modeling.class_count.register_class_count_key({meta_architecture!r}, "
            f"'MODEL.<...>.NUM_CLASSES') (or None if it has no classes)"
        )
    return CLASS_COUNT_KEYS[meta_architecture]

