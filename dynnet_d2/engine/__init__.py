"""Training and evaluation shared by every method: ``DynnetTrainer`` and the trainer choosers
methods register (:func:`build_trainer`), an ``ImageClassifier`` head trained from cached pooled
features (:mod:`.feature_cache`), the device-aware launcher, CPU-capable DDP,
checkpoints, ``results.json``, visualization, the few-shot sweep methods methods declare
(:mod:`.fewshot_methods`), and for benchmarks: the arm runner (:mod:`.arms`), finished runs read
back (:mod:`.runs`) and the start-up benchmark (:mod:`.startup_benchmark`).

May import: utils, config, compat, data, evaluation, modeling; never a method or experiments.
"""
from .checkpoint import CheckpointLoadError, CheckpointMismatchError, DynnetCheckpointer
from .ddp import create_ddp_model
from .defaults import default_argument_parser, default_setup
from .feature_cache import FeatureCacheError, PooledFeatureTrainer, pooled_features
from .launcher import launch
from .trainer import (
    DynnetTrainer,
    UntrainedModelError,
    build_trainer,
    register_trainer_chooser,
    train_or_reuse,
    trainer_class,
)

__all__ = [
    "CheckpointLoadError", "CheckpointMismatchError", "DynnetCheckpointer", "DynnetTrainer",
    "FeatureCacheError", "PooledFeatureTrainer", "UntrainedModelError", "build_trainer",
    "create_ddp_model", "default_argument_parser", "default_setup", "launch", "pooled_features",
    "register_trainer_chooser", "train_or_reuse", "trainer_class",
]
