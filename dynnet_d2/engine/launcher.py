"""Detectron2's ``launch``, aware of ``MODEL.DEVICE``: N GPU processes, or N CPU processes.

Detectron2's worker asserts ``num_gpus <= torch.cuda.device_count()`` and picks NCCL whenever a
GPU is visible, so ``--num-gpus 2`` with ``MODEL.DEVICE cpu`` dies on a one-GPU machine. Here:

* ``MODEL.DEVICE`` cuda: more processes than visible GPUs is a clear error before any start;
* ``MODEL.DEVICE`` cpu with N > 1 processes: the GPUs are hidden from the workers
  (``CUDA_VISIBLE_DEVICES=""``), so they use gloo, and each worker gets ``cpus // N`` intra-op
  threads (N processes with the default thread count each oversubscribe the cores: measured
  7-10x slower on 2 cores). An ``OMP_NUM_THREADS`` set in the environment wins;
* every worker of a multi-process run leaves the process group together with the others once
  its main function returns (a barrier, then ``destroy_process_group``). Detectron2's worker
  just returns, so rank 0, which hosts the rendezvous store, could exit while another rank
  still tore down its gloo connections; CI saw such a rank die with SIGABRT after training.
"""
import os
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Callable, Iterator, Optional, Sequence

import torch
import torch.distributed as dist
from detectron2.engine import launch as detectron2_launch
from detectron2.utils import comm


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def threads_per_process(num_processes: int) -> int:
    """Intra-op threads for each of ``num_processes`` CPU workers sharing this machine."""
    return max(1, available_cpus() // max(1, num_processes))


def _cpu_worker(main_func: Callable, threads: int, *args):
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads)
    return main_func(*args)


def _run_then_leave_process_group(main_func: Callable, *args):
    """``main_func(*args)``, then a barrier and ``destroy_process_group`` (all groups)."""
    result = main_func(*args)
    if dist.is_available() and dist.is_initialized():
        comm.synchronize()
        dist.destroy_process_group()
    return result


@contextmanager
def _gpus_hidden_from_children() -> Iterator[None]:
    """``CUDA_VISIBLE_DEVICES=""`` for the processes started inside the block (they use gloo)."""
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        yield
    finally:
        if previous is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous


def launch(main_func: Callable, num_processes: int, *, device: str, num_machines: int = 1,
           machine_rank: int = 0, dist_url: Optional[str] = None, args: Sequence = ()) -> None:
    """Run ``main_func(*args)`` in ``num_processes`` processes per machine on ``device``.

    ``device`` is the config's ``MODEL.DEVICE``. Raises ``ValueError`` before starting anything
    when CUDA processes outnumber the visible GPUs.
    """
    if torch.device(device).type == "cuda":
        visible = torch.cuda.device_count()
        if visible == 0:
            raise ValueError(f"MODEL.DEVICE {device}, but no CUDA device is visible; leave "
                             f"MODEL.DEVICE unset (it follows the machine) or set it to cpu.")
        if num_processes > visible:
            raise ValueError(
                f"--num-gpus {num_processes} with MODEL.DEVICE {device}, but {visible} CUDA "
                f"device(s) are visible. Use --num-gpus {visible} or fewer, or add "
                f"`MODEL.DEVICE cpu` to train {num_processes} CPU processes."
            )
    several_processes = num_processes * num_machines > 1
    cpu_processes = torch.device(device).type == "cpu" and several_processes
    if several_processes:
        main_func = partial(_run_then_leave_process_group, main_func)
    if cpu_processes:
        main_func = partial(_cpu_worker, main_func, threads_per_process(num_processes))
    with _gpus_hidden_from_children() if cpu_processes else nullcontext():
        detectron2_launch(main_func, num_processes, num_machines=num_machines,
                          machine_rank=machine_rank, dist_url=dist_url, args=tuple(args))
