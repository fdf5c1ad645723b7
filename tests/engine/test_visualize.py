"""Drawings of predictions: one PNG per image, images of the same name kept apart."""
import shutil

import cv2
from detectron2.data import DatasetCatalog, MetadataCatalog

from dynnet_d2.config import get_dynnet_cfg
from dynnet_d2.engine import DynnetTrainer
from dynnet_d2.engine.visualize import visualize_predictions


def test_images_with_the_same_name_in_different_folders_get_different_files(tmp_path):
    source = DatasetCatalog.get("shapes_val")[:2]
    dicts = []
    for folder, d in zip(("a", "b"), source):
        (tmp_path / folder).mkdir()
        shutil.copy(d["file_name"], tmp_path / folder / "image.jpg")
        dicts.append(dict(d, file_name=str(tmp_path / folder / "image.jpg")))
    DatasetCatalog.register("same_names_ds", lambda: dicts)
    MetadataCatalog.get("same_names_ds").set(thing_classes=MetadataCatalog.get("shapes_val").thing_classes)
    cfg = get_dynnet_cfg()
    cfg.merge_from_list(["MODEL.ROI_HEADS.NUM_CLASSES", 20, "INPUT.MIN_SIZE_TEST", 96])
    paths = visualize_predictions(cfg, DynnetTrainer.build_model(cfg), "same_names_ds",
                                  str(tmp_path / "vis"), 2)
    assert len(set(paths)) == 2 and sorted(p.name for p in (tmp_path / "vis").iterdir()) == [
        "0000_image.png", "0001_image.png"]
    for path, d in zip(paths, dicts):
        # ground truth | predictions
        assert cv2.imread(path).shape == (d["height"], 2 * d["width"], 3)
