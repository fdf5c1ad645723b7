"""Cross-process safety of the dataset directory: the generation lock (waited for with a timeout),
the hidden work directories a dataset is built in, and the atomic swap of a finished one into place.
"""
import fcntl
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional

from .spec import DATASET_NAME

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_ENV = "DYNNET_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 600.0  # seconds
LOCK_POLL_INTERVAL = 0.1  # seconds between attempts to take a busy lock


def lock_path(root: Path) -> Path:
    """The lock file that serialises generation of ``root/shapes``."""
    return root / f".{DATASET_NAME}.lock"


def work_dir(root: Path) -> Path:
    """This process's hidden directory under ``root`` in which a new dataset is built."""
    return root / f".{DATASET_NAME}.partial-{os.getpid()}"


def resolve_lock_timeout(timeout: Optional[float]) -> float:
    """``timeout`` if given, else ``$DYNNET_LOCK_TIMEOUT`` if set, else ``DEFAULT_LOCK_TIMEOUT``."""
    if timeout is not None:
        return float(timeout)
    value = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not value:
        return DEFAULT_LOCK_TIMEOUT
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{LOCK_TIMEOUT_ENV}={value!r} is not a number of seconds; set it to "
                         f"e.g. {DEFAULT_LOCK_TIMEOUT:g} or unset it.") from None


def _recorded_holder(path: Path) -> str:
    """Who holds the lock ``path``, from the pid its holder writes into it."""
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process (pid not yet recorded)"


def _acquire(f: IO, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if not waited:
            logger.warning("waiting for %s held by %s (at most %g s)", path, _recorded_holder(path),
                           timeout)
            waited = True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            holder = _recorded_holder(path)
            raise TimeoutError(
                f"Gave up after {timeout:g} s waiting for the lock {path} held by {holder}, which "
                f"is generating the synthetic dataset. To wait longer pass lock_timeout or set "
                f"{LOCK_TIMEOUT_ENV} (seconds). If {holder} is stuck, or gone and a process it "
                f"started still holds the lock, kill it; the next generation deletes the partial "
                f"{DATASET_NAME} directories it left in {path.parent}.")
        time.sleep(min(LOCK_POLL_INTERVAL, remaining))


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, waiting for it at most ``timeout`` seconds.

    While holding it, this process's pid is written in the file, so that a waiter can say whom it
    waits for: it logs that once and raises ``TimeoutError`` naming the file and pid on timeout.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        _acquire(f, path, timeout)
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_work_dirs(root: Path) -> None:
    """Delete the hidden ``.shapes.*-<pid>`` directories under ``root`` left by dead processes
    (and by an earlier, failed generation of this process)."""
    for p in root.glob(f".{DATASET_NAME}.*-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid() or not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def swap_into_place(work: Path, final: Path) -> None:
    """Move the finished directory ``work`` to ``final``; an existing ``final`` is renamed aside
    first and deleted after, so ``final`` is always the old or the new complete directory (or,
    for an instant, absent)."""
    old = final.parent / f".{DATASET_NAME}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(work, final)
    shutil.rmtree(old, ignore_errors=True)
