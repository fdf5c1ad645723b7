from .build import build_evaluator, evaluator_type

__all__ = ["build_evaluator", "evaluator_type"]
