"""ensure_synthetic(): reuse and regeneration, several processes at once, scripts without a main
guard, a failing generation child, and the generation lock's timeout."""
import json
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

from dynnet_d2.data.synthetic import SyntheticSpec, ensure_synthetic, image_root, manifest_path
from dynnet_d2.data.synthetic.locking import file_lock, lock_path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = SyntheticSpec(num_train=4, num_val=1, num_test=1, num_lvis_train=0)


def _env():
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _load(path):
    with open(path) as f:
        return json.load(f)


def test_ensure_reuses_and_regenerates(tmp_path):
    out = ensure_synthetic(tmp_path, TINY, workers=1)
    mp = manifest_path(tmp_path)
    stamp = mp.stat().st_mtime_ns
    assert ensure_synthetic(tmp_path, TINY, workers=1) == out
    assert mp.stat().st_mtime_ns == stamp  # not regenerated
    assert lock_path(tmp_path).read_text() == ""  # released: no holder pid left in it

    spec2 = SyntheticSpec(num_train=3, num_val=1, num_test=1, num_lvis_train=0)
    ensure_synthetic(tmp_path, spec2, workers=1)
    assert _load(mp)["counts"]["train"]["images"] == 3
    assert not (image_root(tmp_path) / "train_000003.jpg").exists()  # no stale files

    mp.write_text("{not json")  # corrupt manifest: regenerate rather than crash
    ensure_synthetic(tmp_path, spec2, workers=1)
    assert _load(mp)["spec"] == spec2.to_dict()


def test_ensure_concurrent_processes(tmp_path):
    """Two processes (e.g. DDP ranks) calling ensure at once: one generates, the other waits."""
    code = (
        "import sys; from dynnet_d2.data.synthetic import *\n"
        "if __name__ == '__main__':\n"
        "    s = SyntheticSpec(num_train=20, num_val=2, num_test=2, num_lvis_train=0)\n"
        "    ensure_synthetic(sys.argv[1], s, workers=1)\n"
        "    print(manifest_path(sys.argv[1]).stat().st_mtime_ns)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    stamps = {o[0].split()[-1] for o in outs}
    assert len(stamps) == 1  # the second process found the first one's dataset
    assert _load(manifest_path(tmp_path))["counts"]["train"]["images"] == 20
    assert not list(tmp_path.glob(".shapes.*-*"))


@pytest.mark.parametrize("generate", ["ensure_synthetic", "generate_dataset"])
def test_script_without_main_guard_finishes(tmp_path, generate):
    """Generation with workers > 1 from a script without ``if __name__ == "__main__":`` (as on
    the first use of a registered dataset name) must finish: not hang on its own lock, and not
    re-run the script (and its generation, recursively) in pool workers."""
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(f"""\
        import sys
        from dynnet_d2.data.synthetic import SyntheticSpec, {generate}
        spec = SyntheticSpec(num_train=8, num_val=2, num_test=2, num_lvis_train=0)
        {generate}(sys.argv[1], spec, workers=2)
        print("done")
        """))
    root = tmp_path / "data"
    proc = subprocess.run([sys.executable, str(script), str(root)], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["done"]  # the script ran once, not again in pool workers
    assert _load(manifest_path(root))["counts"]["train"]["images"] == 8


def test_failing_generation_child_reports_its_stderr(tmp_path, monkeypatch):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'MemoryError: simulated failure' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match=r"(?s)shapes.*status 3.*MemoryError: simulated failure"):
        ensure_synthetic(root, TINY, workers=2)
    with file_lock(lock_path(root), timeout=0):  # the lock was released
        pass


HOLD_LOCK = """\
import sys
from pathlib import Path
from dynnet_d2.data.synthetic.locking import file_lock
with file_lock(Path(sys.argv[1]), timeout=10):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def lock_holder(tmp_path_factory):
    """(root, pid) of another process that holds root's generation lock during these tests."""
    root = tmp_path_factory.mktemp("locked")
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock_path(root))], env=_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield root, proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_lock_timeout_names_lock_file_and_holder(lock_holder, caplog):
    root, pid = lock_holder
    lock = lock_path(root)
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="dynnet_d2.data.synthetic.locking"):
        with pytest.raises(TimeoutError) as err:
            ensure_synthetic(root, TINY, workers=1, lock_timeout=1)
    assert time.monotonic() - t0 < 10
    assert str(lock) in str(err.value) and f"pid {pid}" in str(err.value)
    assert "kill it" in str(err.value) and "DYNNET_LOCK_TIMEOUT" in str(err.value)
    waits = [r.getMessage() for r in caplog.records if r.name.endswith(".locking")]
    assert waits == [f"waiting for {lock} held by pid {pid} (at most 1 s)"]  # logged once
    assert not (root / "shapes").exists()


def test_lock_timeout_from_environment(lock_holder, monkeypatch):
    root, pid = lock_holder
    monkeypatch.setenv("DYNNET_LOCK_TIMEOUT", "0.2")
    with pytest.raises(TimeoutError, match=rf"after 0.2 s .* held by pid {pid}\b"):
        ensure_synthetic(root, TINY, workers=1)
    monkeypatch.setenv("DYNNET_LOCK_TIMEOUT", "ten")
    with pytest.raises(ValueError, match="DYNNET_LOCK_TIMEOUT='ten'"):
        ensure_synthetic(root, TINY, workers=1)
