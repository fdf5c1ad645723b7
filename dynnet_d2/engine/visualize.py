"""Draw a model's predictions on a few test images with Detectron2's Visualizer."""
import os
from typing import List, Optional, Sequence

import cv2
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image
from detectron2.utils.visualizer import Visualizer


def visualize_predictions(cfg, model: torch.nn.Module, dataset_name: str, output_dir: str,
                          num_images: int,
                          class_names: Optional[Sequence[str]] = None) -> List[str]:
    """Save ``num_images`` side-by-side PNGs (ground truth | predictions with score >=
    ``TEST.VIS_SCORE_THRESH``) as ``output_dir/<dataset index>_<image name>.png``; return their
    paths. With ``class_names`` (e.g. the novel classes), only images whose ground truth has one
    of them are drawn, and only those classes' boxes.

    Images are resized as at test time (``INPUT.MIN_SIZE_TEST``/``MAX_SIZE_TEST``) and fed in
    ``INPUT.FORMAT``, like Detectron2's ``DefaultPredictor``.
    """
    metadata = MetadataCatalog.get(dataset_name)
    dicts = list(enumerate(DatasetCatalog.get(dataset_name)))
    if class_names is not None:
        kept = {metadata.thing_classes.index(c) for c in class_names}
        dicts = [(i, dict(d, annotations=[a for a in d["annotations"] if a["category_id"] in kept]))
                 for i, d in dicts]
        dicts = [(i, d) for i, d in dicts if d["annotations"]]
    resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for index, d in dicts[:num_images]:
            rgb = read_image(d["file_name"], format="RGB")
            model_input = rgb[:, :, ::-1] if cfg.INPUT.FORMAT == "BGR" else rgb
            resized = resize.get_transform(model_input).apply_image(model_input)
            tensor = torch.as_tensor(resized.transpose(2, 0, 1).copy())
            outputs = model([{"image": tensor, "height": d["height"], "width": d["width"]}])[0]
            instances = outputs["instances"].to("cpu")
            instances = instances[instances.scores >= cfg.TEST.VIS_SCORE_THRESH]
            if class_names is not None:
                instances = instances[torch.isin(instances.pred_classes,
                                                 torch.tensor(sorted(kept)))]
            gt = Visualizer(rgb, metadata).draw_dataset_dict(d).get_image()
            pred = Visualizer(rgb, metadata).draw_instance_predictions(instances).get_image()
            # The dataset index keeps images of the same name in different folders apart.
            name = os.path.splitext(os.path.basename(d["file_name"]))[0]
            path = os.path.join(output_dir, f"{index:04d}_{name}.png")
            cv2.imwrite(path, cv2.cvtColor(cv2.hconcat([gt, pred]), cv2.COLOR_RGB2BGR))
            paths.append(path)
    model.train(was_training)
    return paths
