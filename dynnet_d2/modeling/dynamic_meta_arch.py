"""Detectron2's detector and semantic segmentor with a backbone that may execute part of itself
per input (the dynamic-compute protocol, :mod:`dynnet_d2.modeling.dynamic`): DeepMoE's gated
backbones as used for detection and segmentation (thesis §3.4, Tables 3.3-3.5).

``DynamicGeneralizedRCNN`` and ``DynamicSemanticSegmentor`` are Detectron2's
``GeneralizedRCNN`` and ``SemanticSegmentor`` with one hook overridden, ``forward``:

* in training, the backbone's extra losses (:meth:`DynamicCompute.losses`) are added to the
  task's, given the images' class presence ``(B, K)`` as targets (1 where an instance of the
  class is in the image; for segmentation, where a pixel is labelled with it) and no per-image
  task loss (a detector has none per image), and ``<prefix>/executed_fraction`` is logged;
* in inference, every output also holds ``"backbone_gflops"``: the backbone's FLOPs for that
  image on the padded input it ran on, counted from what ran (:class:`ExecutedFlops`; a static
  backbone's count is fvcore's), which the trainer's evaluation averages
  (:class:`~dynnet_d2.evaluation.flops.ExecutedFlopsEvaluator`, ``flops/mean_backbone_gflops``).

A plain backbone under these meta-architectures trains and predicts exactly as under Detectron2's
(tests pin it), so a baseline and its dynamic variant report FLOPs the same way.
"""
from dataclasses import replace
from functools import cached_property
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, SemanticSegmentor
from detectron2.utils.events import get_event_storage

from .dynamic import DynamicCompute
from .flops import ExecutedFlops
from .meta_arch import META_ARCHITECTURE_NEEDS, declare_meta_architecture


def presence(labels: List[torch.Tensor], num_classes: int, device) -> torch.Tensor:
    """``(B, num_classes)`` float: 1 where image ``i``'s ``labels[i]`` (any shape, class indices;
    values outside ``[0, num_classes)``, e.g. an ignore label, are left out) hold class ``k``."""
    targets = torch.zeros((len(labels), num_classes), device=device)
    for i, image_labels in enumerate(labels):
        values = image_labels.reshape(-1).to(device).long()
        values = values[(values >= 0) & (values < num_classes)]
        targets[i, values.unique()] = 1.0
    return targets


class _DynamicBackboneForward:
    """The overridden ``forward`` of the meta-architectures below (module docstring); a subclass
    says how its images' class presence is read (:meth:`class_presence`)."""

    backbone: torch.nn.Module
    training: bool
    device: torch.device

    @property
    def dynamic(self) -> Optional[DynamicCompute]:
        """The backbone when it executes part of itself per input, else None."""
        return self.backbone if isinstance(self.backbone, DynamicCompute) else None

    def class_presence(self, batched_inputs: List[Dict]) -> torch.Tensor:
        raise NotImplementedError

    @cached_property
    def backbone_flops(self) -> ExecutedFlops:
        """The backbone's executed-FLOP counter (built on first use; cached per input shape)."""
        costed = self.dynamic.costed_modules() if self.dynamic is not None else {}
        return ExecutedFlops(self.backbone, self._static_backbone, costed)

    def _static_backbone(self, images: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The backbone's outputs with every part executed (for fvcore's static count)."""
        if self.dynamic is None:
            return tuple(self.backbone(images).values())
        with self.dynamic.static_mode():
            return tuple(self.backbone(images).values())

    def forward(self, batched_inputs: List[Dict]):
        dynamic = self.dynamic
        if self.training:
            losses = super().forward(batched_inputs)
            if dynamic is not None:
                losses.update(dynamic.losses(None, self.class_presence(batched_inputs)))
                get_event_storage().put_scalar(f"{dynamic.metric_prefix}/executed_fraction",
                                               float(dynamic.executed_fraction.float().mean()))
            return losses
        shapes = []
        hook = self.backbone.register_forward_pre_hook(
            lambda module, args: shapes.append(tuple(args[0].shape[1:])))
        try:
            outputs = super().forward(batched_inputs)
        finally:
            hook.remove()
        executed = dynamic.executed_fraction if dynamic is not None \
            else torch.ones((len(batched_inputs), 0))
        flops = self.backbone_flops.per_image(shapes[-1], executed, self.device)
        for output, image_flops in zip(outputs, flops):
            output["backbone_gflops"] = float(image_flops) / 1e9
        return outputs


@META_ARCH_REGISTRY.register()
class DynamicGeneralizedRCNN(_DynamicBackboneForward, GeneralizedRCNN):
    """``GeneralizedRCNN`` whose backbone may be dynamic (module docstring)."""

    def class_presence(self, batched_inputs: List[Dict]) -> torch.Tensor:
        return presence([x["instances"].gt_classes for x in batched_inputs],
                        self.roi_heads.num_classes, self.device)


@META_ARCH_REGISTRY.register()
class DynamicSemanticSegmentor(_DynamicBackboneForward, SemanticSegmentor):
    """``SemanticSegmentor`` whose backbone may be dynamic (module docstring)."""

    def class_presence(self, batched_inputs: List[Dict]) -> torch.Tensor:
        return presence([x["sem_seg"] for x in batched_inputs],
                        self.sem_seg_head.predictor.out_channels, self.device)


for _name, _upstream in (("DynamicGeneralizedRCNN", "GeneralizedRCNN"),
                         ("DynamicSemanticSegmentor", "SemanticSegmentor")):
    declare_meta_architecture(_name, replace(META_ARCHITECTURE_NEEDS[_upstream],
                                             reports_backbone_flops=True))
