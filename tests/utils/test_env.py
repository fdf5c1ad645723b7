"""One variable sets the datasets root of dynnet_d2's and Detectron2's built-in dataset names."""
import os
import subprocess
import sys

import pytest

PRINT_ROOTS = ("from detectron2.data import MetadataCatalog; "
               "from dynnet_d2.data.synthetic import default_root; "
               "print(MetadataCatalog.get('coco_2017_val').json_file); print(default_root())")


def _run(code, **env_vars):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DYNNET_DATASETS", "DETECTRON2_DATASETS")}
    env.update(env_vars)
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split(), proc.stderr


@pytest.mark.parametrize("variable", ["DYNNET_DATASETS", "DETECTRON2_DATASETS"])
def test_either_variable_governs_both(tmp_path, variable):
    (coco_json, shapes_root), _ = _run("import dynnet_d2; " + PRINT_ROOTS,
                                       **{variable: str(tmp_path)})
    assert coco_json.startswith(str(tmp_path) + "/coco/")
    assert shapes_root == str(tmp_path)


def test_detectron2_imported_first_is_warned_about(tmp_path):
    (coco_json, _), stderr = _run("import detectron2.data; import dynnet_d2; " + PRINT_ROOTS,
                                  DYNNET_DATASETS=str(tmp_path))
    assert coco_json.startswith("datasets/coco/")
    assert "import dynnet_d2 first or set DETECTRON2_DATASETS" in stderr
