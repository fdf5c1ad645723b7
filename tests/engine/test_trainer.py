"""Training end to end on tiny data: results.json, atomic checkpoints, --resume, clear errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from dynnet_d2 import compat, get_dynnet_cfg
from dynnet_d2.data import EmptyDatasetError, ImageReadError
from dynnet_d2.data.mappers import CheckedDatasetMapper
from dynnet_d2.engine import DynnetTrainer

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "Base-RCNN-Tiny.yaml")
TINY = [
    "SOLVER.IMS_PER_BATCH", 2, "SOLVER.BASE_LR", 0.01, "SOLVER.WARMUP_ITERS", 0, "SOLVER.STEPS", (),
    "SOLVER.CHECKPOINT_PERIOD", 2, "DATALOADER.NUM_WORKERS", 0, "INPUT.MIN_SIZE_TRAIN", (128,),
    "INPUT.MIN_SIZE_TEST", 128, "MODEL.RPN.POST_NMS_TOPK_TRAIN", 64, "MODEL.RPN.POST_NMS_TOPK_TEST", 32,
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 32, "SEED", 1,
]


def _cfg(output_dir, *opts):
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(TINY + ["OUTPUT_DIR", str(output_dir)] + list(opts))
    return cfg


def _iterations(output_dir):
    """Training iterations logged to metrics.json."""
    rows = [json.loads(line) for line in (Path(output_dir) / "metrics.json").read_text().splitlines()]
    return sorted({r["iteration"] for r in rows if "total_loss" in r})


def test_train_evaluate_and_resume(tmp_path):
    cfg = _cfg(tmp_path, "SOLVER.MAX_ITER", 4, "TEST.VIS_NUM_IMAGES", 2)
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert {"AP", "AP50", "AP75"} <= set(results["bbox"])
    saved = json.loads((tmp_path / "inference" / "results.json").read_text())
    assert set(saved) == {"bbox"} and set(saved["bbox"]) == set(results["bbox"])
    assert len(list((tmp_path / "visualizations").glob("*.png"))) == 2
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert {"model_0000001.pth", "model_final.pth"} <= set(os.listdir(tmp_path))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]

    resumed = DynnetTrainer(_cfg(tmp_path, "SOLVER.MAX_ITER", 6))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 4  # continues after the last finished iteration (3)
    resumed.train()
    assert _iterations(tmp_path)[-1] == 5


def test_two_cpu_processes_train_with_ddp(tmp_path):
    """``--num-gpus 2`` without a GPU: two gloo processes; DDP must not get device_ids."""
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", CONFIG,
           "--num-gpus", "2", "--dist-url", "auto", "OUTPUT_DIR", str(tmp_path), "SOLVER.MAX_ITER", 3,
           "DATASETS.TEST", "('shapes_val',)"] + TINY
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "log.txt").read_text()
    assert "World size: 2" in log
    assert "bbox" in json.loads((tmp_path / "inference" / "results.json").read_text())


def test_unwritable_output_dir_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match="OUTPUT_DIR"):
        DynnetTrainer(_cfg(tmp_path / "file" / "out", "SOLVER.MAX_ITER", 1))


def test_class_count_mismatch_is_named(tmp_path):
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", ("shapes_train_base1",), "DATASETS.TEST", ())
    with pytest.raises(ValueError, match=r"shapes_train_base1.*15 classes.*NUM_CLASSES=20"):
        DynnetTrainer(cfg)


def test_unknown_dataset_name_lists_available(tmp_path):
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", ("shapes_trian",))
    with pytest.raises(KeyError, match="shapes_trian"):
        DynnetTrainer(cfg)


def test_empty_after_filtering_is_named(tmp_path):
    DatasetCatalog.register("no_annotations_ds", lambda: [
        {"file_name": "x.jpg", "image_id": 0, "height": 8, "width": 8, "annotations": []}])
    MetadataCatalog.get("no_annotations_ds").set(thing_classes=[str(i) for i in range(20)])
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", ("no_annotations_ds",), "DATASETS.TEST", ())
    with pytest.raises(EmptyDatasetError, match="no_annotations_ds.*FILTER_EMPTY_ANNOTATIONS"):
        DynnetTrainer(cfg)


@pytest.mark.parametrize("content", [None, b"this is not a jpeg"])
def test_missing_or_corrupt_image_is_named(tmp_path, content):
    path = tmp_path / "broken.jpg"
    if content is not None:
        path.write_bytes(content)
    mapper = CheckedDatasetMapper(_cfg(tmp_path), is_train=True)
    record = {"file_name": str(path), "image_id": 7, "height": 8, "width": 8, "annotations": []}
    with pytest.raises(ImageReadError, match="broken.jpg"):
        mapper(record)


@pytest.mark.skipif(compat.has_compiled_detectron2(), reason="a compiled Detectron2 has every op")
def test_config_needing_missing_op_fails_before_training(tmp_path):
    cfg = _cfg(tmp_path, "MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignRotated")
    with pytest.raises(compat.UnavailableOpError, match="ROIAlignRotated"):
        DynnetTrainer(cfg)
