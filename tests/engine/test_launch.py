"""The device-aware launcher: clear errors before starting, gloo CPU workers with split threads."""
import json
import os

import pytest
import torch
from detectron2.utils import comm

from dynnet_d2.engine import launcher as launch_module
from dynnet_d2.engine.launcher import launch, threads_per_process


def _report_worker(out_dir):
    """Runs in each worker: record what the worker sees."""
    report = {"rank": comm.get_rank(), "world": comm.get_world_size(),
              "backend": torch.distributed.get_backend(), "threads": torch.get_num_threads(),
              "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
              "cuda_available": torch.cuda.is_available()}
    with open(os.path.join(out_dir, f"rank{report['rank']}.json"), "w") as f:
        json.dump(report, f)


def test_two_cpu_workers_use_gloo_split_threads_and_see_no_gpu(tmp_path, monkeypatch):
    """MODEL.DEVICE cpu with 2 processes, on any machine (a visible GPU included)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    launch(_report_worker, 2, device="cpu", dist_url="auto", args=(str(tmp_path),))
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for report in reports:
        assert report["world"] == 2 and report["backend"] == "gloo"
        assert report["threads"] == threads_per_process(2)
        assert report["cuda_visible_devices"] == "" and not report["cuda_available"]
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the parent's environment is restored


def test_a_worker_leaves_the_process_group_once_its_main_returns(tmp_path):
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}",
                                         rank=0, world_size=1)
    assert launch_module._run_then_leave_process_group(lambda x: x + 1, 41) == 42
    assert not torch.distributed.is_initialized()


def test_explicit_thread_count_wins(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert launch_module._cpu_worker(lambda x: x * 2, 1, 21) == 42
    assert calls == []
    monkeypatch.delenv("OMP_NUM_THREADS")
    launch_module._cpu_worker(lambda: None, 1)
    assert calls == [1]


def test_threads_split_between_processes(monkeypatch):
    monkeypatch.setattr(launch_module, "available_cpus", lambda: 16)
    assert [threads_per_process(n) for n in (1, 2, 3, 16, 32)] == [16, 8, 5, 1, 1]


@pytest.mark.parametrize("visible,match", [
    (1, r"--num-gpus 2 with MODEL.DEVICE cuda, but 1 CUDA device\(s\).*MODEL.DEVICE cpu"),
    (0, r"MODEL.DEVICE cuda, but no CUDA device is visible"),
])
def test_more_cuda_processes_than_gpus_fail_before_starting(monkeypatch, visible, match):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    started = []
    monkeypatch.setattr(launch_module, "detectron2_launch", lambda *a, **k: started.append(a))
    with pytest.raises(ValueError, match=match):
        launch(lambda: None, 2, device="cuda")
    assert started == []
