"""Evaluators shared by every method, chosen by a dataset's ``evaluator_type`` (:mod:`.build`):
COCO (id-safe, faster-coco-eval, bAP/nAP and partial-mask subsets), LVIS and Pascal VOC with
generalized few-shot metrics (:mod:`.fewshot`), classification, and detection error analysis.

May import: utils, config, compat, data; never modeling, engine, a method or experiments.
"""
from .build import build_evaluator, evaluator_type
from .classification import DynnetClassificationEvaluator

__all__ = ["build_evaluator", "evaluator_type", "DynnetClassificationEvaluator"]
