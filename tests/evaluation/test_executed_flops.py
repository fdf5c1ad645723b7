"""ExecutedFlopsEvaluator (dynnet_d2/evaluation/flops.py): the mean of the outputs'
``backbone_gflops`` and a clear error for outputs without them."""
import pytest

from dynnet_d2.evaluation.flops import ExecutedFlopsEvaluator


def test_mean_backbone_gflops_over_the_images():
    evaluator = ExecutedFlopsEvaluator()
    evaluator.reset()
    evaluator.process([{}, {}], [{"backbone_gflops": 0.5}, {"backbone_gflops": 0.25}])
    evaluator.process([{}], [{"backbone_gflops": 0.75}])
    assert evaluator.evaluate() == {"flops": {"mean_backbone_gflops": 0.5, "num_images": 3}}


def test_outputs_without_flops_are_an_error():
    evaluator = ExecutedFlopsEvaluator()
    evaluator.reset()
    with pytest.raises(KeyError, match="'backbone_gflops'.*keys \\['instances'\\]"):
        evaluator.process([{}], [{"instances": None}])
