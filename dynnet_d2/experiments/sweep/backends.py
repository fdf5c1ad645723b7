"""Where a sweep's runs execute. A :class:`Backend` maps a picklable function over items and
yields ``(item, result)`` as they complete; a result is what the function returned, or a failure
record when the worker itself died (the function records its own exceptions).

* :class:`LocalBackend`: N worker processes on this machine, the CPU threads split between them
  (``cpus // N`` each; ``OMP_NUM_THREADS`` set by hand wins). A worker that dies (killed, out of
  memory) fails its run only: the pool is rebuilt and the other runs go on. Ctrl-C is the
  sweep's: the workers ignore SIGINT, the sweep's main thread never blocks on them for more than
  half a second (so the interrupt is handled at once), and an interrupted ``map`` ends their
  runs with SIGTERM (which a worker turns into ``SystemExit``, so its exit handlers run) and
  waits for them; the runs resume from their last checkpoints next time. A SIGTERM to the
  sweep's process (``kill``, a scheduler's time limit) is an interruption too: without it the
  workers would go on training, orphaned, and write into the runs' folders.
* :class:`SubmititBackend`: one job per run, submitted as one job array through ``submitit``
  (Slurm, or its local executor for tests and single machines).

Other engines subclass :class:`Backend` and implement :meth:`Backend.map`.
"""
import abc
import concurrent.futures as futures
import multiprocessing
import os
import signal
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ...utils.signals import sigterm_as_interrupt


def worker_died(item: Any, why: str) -> dict:
    """The record of a run whose worker ended without returning."""
    return {"status": "failed", "run": getattr(item, "name", str(item)),
            "error": f"the worker running it ended without a result: {why}",
            "log": os.path.join(getattr(item, "output_dir", ""), "log.txt")}


class Backend(abc.ABC):
    """Runs ``fn(item)`` for every item; yields ``(item, result)`` in completion order."""

    @abc.abstractmethod
    def map(self, fn: Callable[[Any], dict], items: Sequence[Any]) -> Iterator[Tuple[Any, dict]]:
        ...

    def describe(self) -> str:
        return type(self).__name__


def _exit_run(signum, frame) -> None:
    """SIGTERM ends the worker's run (the pool then ends the worker): exit handlers run."""
    raise SystemExit(128 + signum)


def _init_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the sweep, which ends workers
    signal.signal(signal.SIGTERM, _exit_run)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ["TQDM_DISABLE"] = "1"  # a run's progress bars would garble the sweep's line
    warnings.simplefilter("ignore", FutureWarning)  # import-time deprecations, once per worker
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


#: Seconds the sweep's main thread waits on its workers before it looks at signals again.
POLL_S = 0.5


def _completed(running: Dict[futures.Future, Any]) -> Iterator[futures.Future]:
    """The futures of ``running`` as they complete (those completing together in submission
    order, so that when a worker dies the run it was running is reported first), like
    ``futures.as_completed``, but never blocked for more than :data:`POLL_S`: the kernel may
    deliver a Ctrl-C sent to the process group to another thread of this process (the pool's),
    and Python runs the handler only once the main thread executes bytecode again, which a main
    thread blocked on a lock until a multi-hour run ends would not do."""
    order, waiting = list(running), set(running)
    while waiting:
        done, waiting = futures.wait(waiting, timeout=POLL_S,
                                     return_when=futures.FIRST_COMPLETED)
        yield from (f for f in order if f in done)


class LocalBackend(Backend):
    """``workers`` spawned processes with ``threads`` intra-op threads each."""

    def __init__(self, workers: int = 1, threads: Optional[int] = None):
        if workers < 1:
            raise ValueError(f"--workers {workers}: expected at least 1")
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)

    def describe(self) -> str:
        return f"{self.workers} local worker(s) x {self.threads} thread(s)"

    def _pool(self) -> futures.ProcessPoolExecutor:
        return futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self.threads,))

    def map(self, fn, items):
        with sigterm_as_interrupt():
            yield from self._map(fn, items)

    def _map(self, fn, items):
        pending: List[Any] = list(items)
        while pending:
            pool = self._pool()
            running: Dict[futures.Future, Any] = {pool.submit(fn, item): item for item in pending}
            pending = []
            try:
                for future in _completed(running):
                    item = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool as e:
                        # A worker died: the first run reported broken fails, the others go to a
                        # new pool (each resumes from its last checkpoint).
                        yield item, worker_died(item, f"{type(e).__name__}: {e}")
                        pending = list(running.values())
                        break
                    yield item, result
            except BaseException:
                # Interrupted (Ctrl-C, or the consumer stopped): end the running runs now
                # instead of waiting for them at exit, then let the pool close its queues.
                for process in list(pool._processes.values()):
                    process.terminate()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                pool.shutdown(wait=False, cancel_futures=True)


class SubmititBackend(Backend):
    """One ``submitit`` job per item. ``cluster``: "slurm", "local" (submitit's local executor)
    or None (Slurm when available, else local); ``parameters``: ``update_parameters`` keywords
    (e.g. ``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ``cpus_per_task``)."""

    def __init__(self, folder: str, cluster: Optional[str] = None,
                 parameters: Optional[Dict[str, Any]] = None, poll_s: float = 1.0):
        import submitit

        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        self.executor.update_parameters(**(parameters or {}))
        self.folder = folder
        self.poll_s = poll_s

    def describe(self) -> str:
        return f"submitit ({self.executor.cluster}) jobs in {self.folder}"

    def map(self, fn, items):
        items = list(items)
        jobs = dict(zip(self.executor.map_array(fn, items), items))  # one Slurm job array
        while jobs:
            done = [job for job in jobs if job.done()]
            for job in done:
                item = jobs.pop(job)
                try:
                    yield item, job.result()
                except Exception as e:  # noqa: BLE001 - the job died or was cancelled
                    yield item, {**worker_died(item, f"job {job.job_id}: {type(e).__name__}: "
                                                     f"{str(e)[-500:]}"),
                                 "job_stderr": str(job.paths.stderr)}
            if jobs and not done:
                time.sleep(self.poll_s)
