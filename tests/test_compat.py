"""The Detectron2 stack we install works here, and what it lacks fails clearly."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg

from dynnet_d2 import compat
from dynnet_d2.compat import UnavailableOpError, check_config_ops

needs_missing_c = pytest.mark.skipif(compat.has_compiled_detectron2(),
                                     reason="a compiled Detectron2 has every op")


def test_detectron2_model_zoo_configs_merge_into_our_defaults():
    """Users extend Detectron2's own configs: model_zoo (needs pkg_resources, setuptools<81) finds
    them and they merge into dynnet_d2's defaults, the device still following the machine."""
    from detectron2 import model_zoo

    from dynnet_d2.config import default_device, load_config

    cfg = load_config(
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"))
    assert cfg.MODEL.MASK_ON and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 80
    assert cfg.MODEL.DEVICE == default_device()


def test_polygon_to_bitmask_matches_pycocotools():
    from detectron2.structures import BitMasks, PolygonMasks
    from pycocotools import mask as mask_utils

    polygon = [2.0, 3.0, 12.0, 3.0, 12.0, 9.0, 2.0, 9.0]  # 10 x 6 rectangle
    bitmask = BitMasks.from_polygon_masks(PolygonMasks([[polygon]]), 16, 20).tensor[0]
    rle = mask_utils.frPyObjects([polygon], 16, 20)
    expected = mask_utils.decode(mask_utils.merge(rle)).astype(bool)
    assert bitmask.shape == (16, 20)
    assert torch.equal(bitmask, torch.from_numpy(expected))
    assert int(bitmask.sum()) == 60


def test_resize_transform_scales_image_and_boxes():
    from detectron2.data import transforms as T

    image = np.zeros((100, 200, 3), dtype=np.uint8)
    aug_input = T.AugInput(image, boxes=np.array([[10.0, 20.0, 50.0, 60.0]]))
    T.AugmentationList([T.ResizeShortestEdge(50, 1000)])(aug_input)
    assert aug_input.image.shape == (50, 100, 3)
    np.testing.assert_allclose(aug_input.boxes, [[5.0, 10.0, 25.0, 30.0]])


@needs_missing_c
def test_unavailable_ops_are_listed():
    ops = " ".join(compat.unavailable_ops())
    assert "deformable" in ops and "rotated" in ops and "COCOeval" in ops


@needs_missing_c
@pytest.mark.parametrize("key,value,op", [
    ("MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, True, True, True], "deformable convolution"),
    ("MODEL.PROPOSAL_GENERATOR.NAME", "RRPN", "rotated box ops"),
    ("MODEL.ROI_HEADS.NAME", "RROIHeads", "rotated box ops"),
    ("MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignRotated", "rotated box ops"),
])
def test_config_asking_for_missing_op_fails_clearly(key, value, op):
    cfg = get_cfg()
    cfg.merge_from_list([key, value])
    with pytest.raises(UnavailableOpError) as e:
        check_config_ops(cfg)
    assert op in str(e.value) and key in str(e.value) and "compiled" in str(e.value)


def test_default_config_needs_no_missing_op():
    check_config_ops(get_cfg())


def test_lvis_eval_runs_on_numpy2_without_patching_numpy(tmp_path):
    from lvis import LVIS, LVISEval, LVISResults

    import dynnet_d2  # noqa: F401  (applies the lvis fix)

    assert not hasattr(np, "float"), "numpy itself must stay unpatched"
    gt = {
        "images": [{"id": 1, "width": 50, "height": 50, "not_exhaustive_category_ids": [],
                    "neg_category_ids": []}],
        "categories": [{"id": 1, "name": "a", "frequency": "f", "image_count": 1, "synset": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20],
                         "area": 400, "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    lvis_gt = LVIS(str(tmp_path / "gt.json"))
    perfect = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9}]
    evaluator = LVISEval(lvis_gt, LVISResults(lvis_gt, perfect), "bbox")
    evaluator.run()
    assert evaluator.get_results()["AP"] == pytest.approx(1.0)
    assert evaluator.get_results()["APf"] == pytest.approx(1.0)


def test_collect_env_names_detectron2_and_what_it_lacks():
    from dynnet_d2.collect_env import collect_env_info

    info = collect_env_info()
    assert "detectron2" in info and "detectron2._C" in info
    assert "mobilenet_v2-b0353104.pth" in info  # installed by `make install`
    if compat.has_compiled_detectron2():
        assert "every op is available" in info
    else:
        assert "NOT loadable" in info and "deformable convolution" in info


def test_import_shows_each_warning_of_the_imported_libraries_once():
    """fvcore's and Detectron2's imports each run torch.jit.script (deprecated): the warning
    used to print twice; now once, and a warning of ours after the import still shows."""
    code = ("import warnings, dynnet_d2\n"
            "warnings.warn('still shown', FutureWarning)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS=""), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("`torch.jit.script` is deprecated") == 1
    assert "FutureWarning: still shown" in proc.stderr
