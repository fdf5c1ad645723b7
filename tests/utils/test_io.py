import json
import os

import pytest

from dynnet_d2.utils.io import atomic_open, atomic_write_json, ensure_writable_dir


def test_atomic_write_replaces_file(tmp_path):
    path = tmp_path / "sub" / "r.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert sorted(os.listdir(path.parent)) == ["r.json"]  # no temporary file left


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write('{"a": 2')
            raise RuntimeError("interrupted")
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["r.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_dir_as_non_root(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(PermissionError, match="OUTPUT_DIR"):
        ensure_writable_dir(ro / "out")


def test_output_dir_under_a_file_is_reported(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError) as e:
        ensure_writable_dir(tmp_path / "file" / "out", key="OUTPUT_DIR")
    assert "OUTPUT_DIR" in str(e.value) and str(tmp_path / "file" / "out") in str(e.value)


def test_atomic_file_gets_umask_mode_not_0600(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {})
    finally:
        os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
