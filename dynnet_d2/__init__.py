"""dynnet_d2: the dynamic neural networks of one thesis as Detectron2 components.

Importing this package registers every component and dataset with Detectron2's registries,
makes ``lvis.eval.LVISEval`` run on NumPy 2 (see :mod:`dynnet_d2.compat`) and, first of all,
lets one variable set the datasets root of both libraries (:mod:`dynnet_d2.utils.env`).

Its parts, each importing only its own layer or lower ones (``tests/test_layers.py``):
utils < config, compat < data < evaluation < modeling < engine < methods < experiments. The
shared parts know no method; each method of ``methods/`` registers itself into the
declarations they hold. CONTRIBUTING.md has the table.
"""
import warnings

from .utils.env import share_datasets_root

share_datasets_root()  # before anything imports detectron2.data

# Importing fvcore and Detectron2 runs torch.jit.script (deprecated in torch 2.14) at two places,
# and sympy's import in between resets the warning registry, so the same FutureWarning printed
# twice: the warnings of the imports are recorded, then each distinct one is shown once (through
# the user's filters).
with warnings.catch_warnings(record=True) as _import_warnings:
    from . import compat, data, methods, modeling  # noqa: E402, F401  (registration side effects)
for _w in {(str(w.message), w.category): w for w in _import_warnings}.values():
    warnings.warn_explicit(_w.message, _w.category, _w.filename, _w.lineno)
del _import_warnings
from .config import add_dynnet_config, get_dynnet_cfg  # noqa: E402

__version__ = "0.1.0"

compat.fix_lvis_numpy2()

__all__ = ["add_dynnet_config", "get_dynnet_cfg", "__version__"]
