from .checkpoint import CheckpointLoadError, CheckpointMismatchError, DynnetCheckpointer
from .ddp import create_ddp_model
from .defaults import default_argument_parser, default_setup
from .launcher import launch
from .trainer import DynnetTrainer, UntrainedModelError

__all__ = [
    "CheckpointLoadError", "CheckpointMismatchError", "DynnetCheckpointer", "DynnetTrainer",
    "UntrainedModelError", "create_ddp_model", "default_argument_parser", "default_setup", "launch",
]
