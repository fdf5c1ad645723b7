from .build import build_evaluator, evaluator_type
from .classification import ClassificationEvaluator

__all__ = ["build_evaluator", "evaluator_type", "ClassificationEvaluator"]
