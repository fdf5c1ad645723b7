from .checkpoint import AtomicDetectionCheckpointer
from .ddp import create_ddp_model
from .trainer import DynnetTrainer

__all__ = ["AtomicDetectionCheckpointer", "DynnetTrainer", "create_ddp_model"]
