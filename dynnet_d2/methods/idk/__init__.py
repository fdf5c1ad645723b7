"""IDK prediction cascades (thesis ch. 4): trained classifiers behind calibrated "I don't know"
decisions.

Importing this package registers the IDK classifier fitting methods (``prob_grid``,
``entropy_grid``, ``entropy_cost``, ``mlp_cost``, ``entropy_oblivious``, ``mlp_oblivious``) in
:data:`IDK_METHOD_REGISTRY`, ours because Detectron2 has no registry for it. A cascade composes
models already trained and registered elsewhere (e.g. ``ImageClassifier`` with a plain or SkipNet
backbone), so it adds nothing to Detectron2's registries; ``tools/run_cascade.py`` builds one
from the ``CASCADE`` config node (:mod:`.build`; its keys: :mod:`.config`); the benchmark's
arms and report are in :mod:`.benchmark` (tools/benchmark_idk.py).
"""
from . import config  # noqa: F401  (registers add_idk_config)
from .cascade import (
    IDK_METHOD_REGISTRY,
    CascadeData,
    FitSpec,
    IDKCascade,
    cascade_risk,
    evaluate_exits,
    exit_stages,
    fit_classifiers,
    oracle_exit_stages,
)
from .runner import CascadeRun, serve
from .stages import CascadeConfigError, HumanExpertStage, ModelStage, ModuleStage, Stage

__all__ = [
    "IDK_METHOD_REGISTRY", "CascadeConfigError", "CascadeData", "CascadeRun", "FitSpec",
    "HumanExpertStage", "IDKCascade", "ModelStage", "ModuleStage", "Stage", "cascade_risk",
    "evaluate_exits", "exit_stages", "fit_classifiers", "oracle_exit_stages", "serve",
]
