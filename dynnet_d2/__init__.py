"""dynnet_d2: the dynamic neural networks of one thesis as Detectron2 components.

Importing this package registers every component and dataset with Detectron2's registries,
makes ``lvis.eval.LVISEval`` run on NumPy 2 (see :mod:`dynnet_d2.compat`) and, first of all,
lets one variable set the datasets root of both libraries (:mod:`dynnet_d2.utils.env`).
"""
from .utils.env import share_datasets_root

share_datasets_root()  # before anything imports detectron2.data

from . import compat, data, modeling  # noqa: E402, F401  (registration side effects)
from .config import add_dynnet_config, get_dynnet_cfg  # noqa: E402

__version__ = "0.1.0"

compat.fix_lvis_numpy2()

__all__ = ["add_dynnet_config", "get_dynnet_cfg", "__version__"]
