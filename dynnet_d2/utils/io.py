"""Atomic file writes: a reader never sees a half-written result, checkpoint or dataset file."""
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, List, Union

PathLike = Union[str, os.PathLike]


TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_open(path: PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    The temporary file is ``.<name>.<random>.tmp`` in the same directory. On an exception it is
    removed and ``path`` is left as it was; a process killed mid-write leaves it behind (see
    :func:`remove_stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result gets a normal file's mode
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(directory: PathLike, name_pattern: str) -> List[Path]:
    """Delete the temporary files :func:`atomic_open` left in ``directory`` (a killed writer) for
    targets whose name matches the regular expression ``name_pattern``; return what was deleted.

    Call it only when no writer of those targets can be running (e.g. when a job starts).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    temporary = re.compile(rf"^\.(?:{name_pattern})\.[^./]+{re.escape(TEMP_SUFFIX)}$")
    removed = []
    for entry in directory.iterdir():
        if temporary.match(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def atomic_write_json(path: PathLike, obj: Any, **dump_kwargs: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, **dump_kwargs)


def ensure_writable_dir(path: PathLike, key: str = "OUTPUT_DIR") -> Path:
    """Create ``path`` if needed and check that files can be written in it.

    Raises ``PermissionError`` naming the directory and the config ``key`` it came from.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise PermissionError(
            f"{key}={str(path)!r} is not a writable directory ({e.strerror or e}). "
            f"Set {key} to a directory you can write to."
        ) from e
    return path
