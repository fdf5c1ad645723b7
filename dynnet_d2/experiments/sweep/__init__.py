"""Few-shot seed sweeps (thesis §7.3): the grid (:mod:`.plan`), one run in a worker
(:mod:`.execute`), where runs execute (:mod:`.backends`) and the whole sweep (:mod:`.runner`).
``tools/run_experiments.py`` is the command line; ``tools/aggregate_seeds.py`` the tables."""
from .backends import Backend, LocalBackend, SubmititBackend
from .execute import execute_run
from .plan import BUILTIN_METHODS, Method, Run, expand_grid, method_from_arg
from .records import finished_record
from .runner import run_sweep

__all__ = ["BUILTIN_METHODS", "Backend", "LocalBackend", "Method", "Run", "SubmititBackend",
           "execute_run", "expand_grid", "finished_record", "method_from_arg", "run_sweep"]
