"""SIGTERM handled like Ctrl-C while a process supervises others (sweep workers, training
subprocesses): ``kill PID`` or a scheduler's time limit then ends them too, instead of leaving
them running on their own, writing into folders a rerun would use."""
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

import psutil


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, a SIGTERM to this process raises ``KeyboardInterrupt`` (so ``finally``
    clauses and ``except KeyboardInterrupt`` run as after Ctrl-C). Only the main thread can
    handle signals: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def end_process_tree(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM to process ``pid`` and all its descendants, SIGKILL to those still running after
    ``timeout_s``."""
    try:
        root = psutil.Process(pid)
        processes = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for p in processes:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
