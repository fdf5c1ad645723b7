"""Training and evaluation end to end on tiny data: results.json, atomic checkpoints, --resume,
DDP on CPU, and every check done before training or --eval-only starts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from dynnet_d2 import compat
from dynnet_d2.config import load_config
from dynnet_d2.data import EmptyDatasetError, ImageReadError
from dynnet_d2.data.mappers import CheckedDatasetMapper
from dynnet_d2.data.synthetic import coco_json_path, image_root
from dynnet_d2.engine import (
    CheckpointMismatchError,
    DynnetCheckpointer,
    DynnetTrainer,
    UntrainedModelError,
)
from dynnet_d2.engine.launcher import threads_per_process

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "faster_rcnn_R18half_FPN_2800it_shapes.yaml")
TINY = [
    "SOLVER.IMS_PER_BATCH", 2, "SOLVER.BASE_LR", 0.01, "SOLVER.WARMUP_ITERS", 0, "SOLVER.STEPS", (),
    "SOLVER.CHECKPOINT_PERIOD", 2, "DATALOADER.NUM_WORKERS", 0, "INPUT.MIN_SIZE_TRAIN", (128,),
    "INPUT.MIN_SIZE_TEST", 128, "MODEL.RPN.POST_NMS_TOPK_TRAIN", 64,
    "MODEL.RPN.POST_NMS_TOPK_TEST", 32,
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 32, "SEED", 1,
]


def _cfg(output_dir, *opts):
    return load_config(CONFIG, TINY + ["OUTPUT_DIR", str(output_dir)] + list(opts))


def _iterations(output_dir):
    """Training iterations logged to metrics.json."""
    rows = [json.loads(line)
            for line in (Path(output_dir) / "metrics.json").read_text().splitlines()]
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

    # --eval-only --resume evaluates the last checkpoint, strictly loaded.
    evaluated = DynnetTrainer.evaluate_checkpoint(_cfg(tmp_path), resume=True)
    assert {"AP", "AP50", "AP75"} <= set(evaluated["bbox"])


def test_two_cpu_processes_train_with_ddp(tmp_path):
    """``--num-gpus 2`` on the CPU: two gloo processes, one thread each on 2 cores (the GPU, if
    any, is hidden from this test's subprocess: it means CPU)."""
    cmd = [sys.executable, str(REPO / "tools" / "train_net.py"), "--config-file", CONFIG,
           "--num-gpus", "2", "--dist-url", "auto", "OUTPUT_DIR", str(tmp_path),
           "SOLVER.MAX_ITER", 3,
           "DATASETS.TEST", "('shapes_val',)"] + TINY
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "log.txt").read_text()
    assert "World size: 2" in log
    threads = threads_per_process(2)  # the cores split between the two workers
    assert f"MODEL.DEVICE=cpu (CUDA available: False; {threads} intra-op thread(s))" in log
    assert "Wrote evaluation results to" in log  # dynnet_d2's logger reaches log.txt
    assert "bbox" in json.loads((tmp_path / "inference" / "results.json").read_text())


def test_user_coco_dataset_from_config_without_train_net(tmp_path):
    """DATASETS.COCO_JSON_DATASETS is registered by the trainer and by --eval-only themselves."""
    entry = [["my_shapes_val", str(coco_json_path("val")), str(image_root())]]
    cfg = _cfg(tmp_path, "SOLVER.MAX_ITER", 1, "DATASETS.COCO_JSON_DATASETS", entry,
               "DATASETS.TRAIN", ("my_shapes_val",), "DATASETS.TEST", ("my_shapes_val",))
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=False)
    assert "bbox" in trainer.train()


def test_eval_only_without_weights_is_an_error_unless_allowed(tmp_path):
    cfg = _cfg(tmp_path, "DATASETS.TEST", ("shapes_val",))
    with pytest.raises(UntrainedModelError, match="MODEL.WEIGHTS is empty.*TEST.ALLOW_UNTRAINED"):
        DynnetTrainer.evaluate_checkpoint(cfg)
    cfg = _cfg(tmp_path, "DATASETS.TEST", ("shapes_val",), "TEST.ALLOW_UNTRAINED", True)
    assert "bbox" in DynnetTrainer.evaluate_checkpoint(cfg)


def test_eval_only_with_weights_for_another_class_count(tmp_path):
    model = DynnetTrainer.build_model(_cfg(tmp_path))  # 20 classes
    DynnetCheckpointer(model, str(tmp_path)).save("model_20_classes")
    cfg = _cfg(tmp_path, "MODEL.ROI_HEADS.NUM_CLASSES", 15, "DATASETS.TEST", ("shapes_val_base1",),
               "MODEL.WEIGHTS", str(tmp_path / "model_20_classes.pth"))
    with pytest.raises(CheckpointMismatchError,
                       match=r"cls_score.weight \(checkpoint \(21, 256\), model \(16, 256\)\)"):
        DynnetTrainer.evaluate_checkpoint(cfg)


def test_eval_only_checks_config_against_dataset(tmp_path):
    cfg = _cfg(tmp_path, "DATASETS.TEST", ("shapes_val_base1",), "TEST.ALLOW_UNTRAINED", True)
    with pytest.raises(ValueError,
                       match=r"shapes_val_base1.*15 classes.*MODEL.ROI_HEADS.NUM_CLASSES=20"):
        DynnetTrainer.evaluate_checkpoint(cfg)
    with pytest.raises(EmptyDatasetError, match="DATASETS.TEST is empty: nothing to evaluate"):
        DynnetTrainer.evaluate_checkpoint(_cfg(tmp_path, "DATASETS.TEST", ()))


def test_unwritable_output_dir_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match="OUTPUT_DIR"):
        DynnetTrainer(_cfg(tmp_path / "file" / "out", "SOLVER.MAX_ITER", 1))


def test_class_count_mismatch_is_named(tmp_path):
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", ("shapes_train_base1",), "DATASETS.TEST", ())
    with pytest.raises(ValueError, match=r"shapes_train_base1.*15 classes.*NUM_CLASSES=20"):
        DynnetTrainer(cfg)


def test_class_count_key_follows_the_meta_architecture(tmp_path):
    from dynnet_d2.data.build import check_num_classes
    from dynnet_d2.modeling.meta_arch import meta_architecture_needs

    cfg = _cfg(tmp_path, "MODEL.META_ARCHITECTURE", "RetinaNet", "MODEL.RETINANET.NUM_CLASSES", 15)
    key = meta_architecture_needs(cfg).class_count_key
    check_num_classes(cfg, ["shapes_train_base1"], "DATASETS.TRAIN", key)
    with pytest.raises(ValueError, match=r"MODEL.RETINANET.NUM_CLASSES=15 .*RetinaNet"):
        check_num_classes(cfg, ["shapes_train"], "DATASETS.TRAIN", key)
    cfg = _cfg(tmp_path, "MODEL.META_ARCHITECTURE", "SomethingNew")
    with pytest.raises(KeyError, match="declare_meta_architecture"):
        meta_architecture_needs(cfg)


def test_unknown_dataset_name_lists_available(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", ("shapes_trian",))
    built = []
    monkeypatch.setattr(DynnetTrainer, "build_model",
                        classmethod(lambda cls, cfg: built.append(cfg)))
    with pytest.raises(KeyError, match="shapes_trian") as error:
        DynnetTrainer(cfg)
    message = str(error.value)
    assert message.startswith("DATASETS.TRAIN: dataset 'shapes_trian' is not registered")
    assert "closest registered names: shapes_train" in message
    assert "\n" not in message and len(message) < 400 and not built  # before the model


def test_unknown_few_shot_name_says_which_shots_and_seeds_exist(tmp_path):
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", ("shapes_train_all1_4shot_seed0",),
               "DATASETS.TEST", ("shapes_test_all1",))
    with pytest.raises(KeyError) as error:
        DynnetTrainer.evaluate_checkpoint(cfg)
    message = str(error.value)
    assert ("shapes_train_all1 has K-shot sets for shots 1-3, 5, 10 and seeds 0-29"
            in message), message
    assert "shapes_train_all1_3shot_seed0" in message and "\n" not in message


def _register(name, dicts, classes=20, **metadata):
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=[str(i) for i in range(classes)], **metadata)


def test_empty_after_filtering_is_named(tmp_path):
    _register("no_annotations_ds", [{"file_name": "x.jpg", "image_id": 0, "height": 8, "width": 8,
                                     "annotations": []}])
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", ("no_annotations_ds",), "DATASETS.TEST", (),
               "DATASETS.CHECK_IMAGES", False)
    with pytest.raises(EmptyDatasetError, match="no_annotations_ds.*FILTER_EMPTY_ANNOTATIONS"):
        DynnetTrainer(cfg)


def test_bad_test_images_fail_before_training(tmp_path):
    """A missing or wrongly sized test image is reported before the first iteration, with all
    the bad files named, not after the whole training."""
    good = DatasetCatalog.get("shapes_val")
    broken = [dict(good[0], file_name=str(tmp_path / "gone.jpg")),
              dict(good[1], width=good[1]["width"] + 3)] + good[2:]
    _register("bad_images_val", broken, evaluator_type="coco")
    cfg = _cfg(tmp_path, "DATASETS.TEST", ("bad_images_val",), "SOLVER.MAX_ITER", 1)
    with pytest.raises(ImageReadError) as e:
        DynnetTrainer(cfg)
    message = str(e.value)
    assert "2 image(s) of DATASETS.TEST" in message and "gone.jpg: no such file" in message
    assert f"but its annotation says {good[1]['width'] + 3}x{good[1]['height']}" in message
    assert not (tmp_path / "metrics.json").exists()


def test_test_dataset_without_evaluator_fails_before_training(tmp_path):
    _register("no_evaluator_val", DatasetCatalog.get("shapes_val"))
    with pytest.raises(ValueError, match="no_evaluator_val.*evaluator_type=None"):
        DynnetTrainer(_cfg(tmp_path, "DATASETS.TEST", ("no_evaluator_val",)))


def test_mask_on_without_masks_is_named(tmp_path):
    no_masks = [dict(d, annotations=[{k: v for k, v in a.items() if k != "segmentation"}
                                     for a in d["annotations"]])
                for d in DatasetCatalog.get("shapes_val")]
    _register("no_masks_val", no_masks, evaluator_type="coco")
    cfg = _cfg(tmp_path, "MODEL.MASK_ON", True, "DATASETS.TRAIN", ("no_masks_val",),
               "DATASETS.TEST", ())
    with pytest.raises(ValueError,
                       match="dataset 'no_masks_val' has no segmentation.*MODEL.MASK_ON False"):
        DynnetTrainer(cfg)


def test_non_numeric_box_is_named(tmp_path):
    dicts = DatasetCatalog.get("shapes_val")
    dicts[0]["annotations"][0]["bbox"] = [1, 2, "3", 4]
    _register("bad_box_val", dicts, evaluator_type="coco")
    cfg = _cfg(tmp_path, "DATASETS.TRAIN", ("bad_box_val",), "DATASETS.TEST", ())
    with pytest.raises(ValueError, match=r"bad_box_val.*annotation 0: bbox \[1, 2, '3', 4\] "
                                         r"is not four finite"):
        DynnetTrainer(cfg)


@pytest.mark.parametrize("content", [None, b"this is not a jpeg"])
def test_missing_or_corrupt_image_is_named_by_the_mapper(tmp_path, content):
    path = tmp_path / "broken.jpg"
    if content is not None:
        path.write_bytes(content)
    mapper = CheckedDatasetMapper(_cfg(tmp_path), is_train=True)
    record = {"file_name": str(path), "image_id": 7, "height": 8, "width": 8, "annotations": []}
    with pytest.raises(ImageReadError, match="broken.jpg"):
        mapper(record)


@pytest.mark.parametrize("key,value", [
    ("MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, True, True, True]),
    ("MODEL.RESNETS.RES5_DILATION", 2),
])
@pytest.mark.parametrize("backbone", ["build_basic_resnet_fpn_backbone",
                                      "build_mobilenet_v2_fpn_backbone"])
def test_resnet_options_our_backbones_ignore_fail_loudly(tmp_path, key, value, backbone):
    cfg = _cfg(tmp_path, "MODEL.BACKBONE.NAME", backbone, key, value)
    with pytest.raises(ValueError,
                       match=rf"{key}=.*not supported by MODEL.BACKBONE.NAME={backbone}"):
        DynnetTrainer.build_model(cfg)


@pytest.mark.skipif(compat.has_compiled_detectron2(), reason="a compiled Detectron2 has every op")
def test_config_needing_missing_op_fails_before_training(tmp_path):
    cfg = _cfg(tmp_path, "MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlignRotated")
    with pytest.raises(compat.UnavailableOpError, match="ROIAlignRotated"):
        DynnetTrainer(cfg)
