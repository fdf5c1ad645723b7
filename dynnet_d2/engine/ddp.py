"""DistributedDataParallel that also works for CPU models (brief §4).

Detectron2's ``create_ddp_model`` always passes ``device_ids=[local_rank]``, which DDP rejects
for a module on the CPU. Here ``device_ids`` is only given for CUDA modules, so training with
``--num-gpus N`` on a CPU machine runs N gloo processes.
"""
import torch
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel


def create_ddp_model(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """Wrap ``model`` in DDP when there is more than one process; CPU modules get no device_ids."""
    if comm.get_world_size() == 1:
        return model
    on_cuda = any(p.is_cuda for p in model.parameters())
    return DistributedDataParallel(
        model, device_ids=[comm.get_local_rank()] if on_cuda else None, **kwargs
    )
