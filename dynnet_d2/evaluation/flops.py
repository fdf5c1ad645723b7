"""The mean executed backbone FLOPs of an evaluation: the outputs of a meta-architecture that
reports them (:mod:`dynnet_d2.modeling.dynamic_meta_arch`) hold ``"backbone_gflops"`` per image;
``evaluate()`` returns ``{"flops": {"mean_backbone_gflops": mean over the images,
"num_images": n}}`` gathered over every process, next to the task's evaluator (the trainer
combines both with Detectron2's ``DatasetEvaluators``)."""
import itertools
from collections import OrderedDict
from typing import Dict, List

from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

OUTPUT_KEY = "backbone_gflops"


class ExecutedFlopsEvaluator(DatasetEvaluator):
    """Averages the outputs' ``"backbone_gflops"`` (module docstring)."""

    def reset(self) -> None:
        self._gflops: List[float] = []

    def process(self, inputs: List[Dict], outputs: List[Dict]) -> None:
        for output in outputs:
            if OUTPUT_KEY not in output:
                raise KeyError(f"an output has no {OUTPUT_KEY!r} (keys {sorted(output)}): the "
                               f"model's meta-architecture does not report executed backbone "
                               f"FLOPs")
            self._gflops.append(float(output[OUTPUT_KEY]))

    def evaluate(self):
        gflops = list(itertools.chain.from_iterable(comm.gather(self._gflops)))
        if not comm.is_main_process():
            return {}
        if not gflops:
            return OrderedDict(flops={"mean_backbone_gflops": float("nan"), "num_images": 0})
        return OrderedDict(flops={"mean_backbone_gflops": sum(gflops) / len(gflops),
                                  "num_images": len(gflops)})
