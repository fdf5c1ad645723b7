"""The stages of an IDK cascade (thesis ch. 4): black-box classifiers of one label space.

A stage maps a batch of mapped classification inputs (``{"image": (C, H, W) tensor, "label",
"image_id"}``, :class:`~dynnet_d2.data.classification.ClassificationMapper`) to the class
probabilities ``(B, K)`` of Eq. 4.1 and the cost ``(B,)`` of each input, both on the CPU:

* :class:`ModelStage`: any trained model of ours given as (config, weights), e.g. an
  ``ImageClassifier`` with a plain ResNet or a SkipNet backbone. Its cost is fvcore's FLOP
  count, per input executed FLOPs for dynamic backbones (the model's ``gflops`` output).
* :class:`ModuleStage`: a plain ``nn.Module`` or TorchScript module mapping float images
  ``(B, C, H, W)`` to logits ``(B, K)``, with a given cost (or fvcore's count of an
  ``nn.Module``).
* :class:`HumanExpertStage`: the human in the loop, simulated from the labels: right with
  probability ``accuracy`` per input (drawn from the seed and the ``image_id``, so independent of
  batching), else a uniformly drawn other class; one-hot probabilities.

``cost_unit`` is "flops" (FLOPs per input) or "latency" (seconds per input measured here,
:func:`measure_latency`).
"""
import hashlib
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from torch import nn
from torch.nn import functional as F

from ...modeling.flops import static_flops
from ...modeling.meta_arch import is_classifier

COST_UNITS = ("flops", "latency")
TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript")


class CascadeConfigError(ValueError):
    """A cascade's stages, calibration data or fitted file do not fit together."""


class Stage:
    """Base of the stages: ``name``, ``class_names`` (the label space), ``train_datasets`` (for
    the calibration overlap check) and a fixed cost per input (None = per input from the
    outputs)."""

    def __init__(self, name: str, class_names: Sequence[str], train_datasets: Sequence[str],
                 cost: Optional[float]):
        self.name = name
        self.class_names = list(class_names)
        self.train_datasets = tuple(train_datasets)
        self.cost = cost

    def predict(self, batch: List[Dict]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (B, K) and per-input cost (B,) float64 of ``batch``."""
        raise NotImplementedError

    def describe(self) -> Dict:
        """What identifies the stage in a saved cascade."""
        return {"name": self.name, "kind": type(self).__name__, "class_names": self.class_names}

    def _costs(self, batch_size: int, measured: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.cost is not None:
            return torch.full((batch_size,), float(self.cost), dtype=torch.float64)
        return measured.to(torch.float64)


class ModelStage(Stage):
    """A trained model of ours from its config and weights (see the module docstring)."""

    def __init__(self, cfg, weights: str, *, name: str = "", cost: Optional[float] = None):
        if not is_classifier(cfg):
            raise CascadeConfigError(
                f"cascade stage {name or weights!r}: MODEL.META_ARCHITECTURE="
                f"{cfg.MODEL.META_ARCHITECTURE!r} is not an image classifier")
        if not weights or not Path(weights).is_file():
            raise CascadeConfigError(f"cascade stage {name or weights!r}: weights file "
                                     f"{weights!r} does not exist")
        from ...engine.checkpoint import load_strictly  # engine imports the data package

        model = build_model(cfg)
        load_strictly(model, cfg, weights)
        self.model = model.eval()
        train = tuple(cfg.DATASETS.TRAIN)
        classes = MetadataCatalog.get(train[0]).get("thing_classes") if train else None
        if not classes:
            raise CascadeConfigError(f"cascade stage {name or weights!r}: its DATASETS.TRAIN "
                                     f"{train} names no dataset with thing_classes")
        super().__init__(name or Path(weights).parent.name, classes, train, cost)
        self.weights_sha256 = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
        self.cfg = cfg

    def describe(self) -> Dict:
        """The weights by content, so a cascade still loads after they moved."""
        return {**super().describe(), "weights_sha256": self.weights_sha256}

    @torch.no_grad()
    def predict(self, batch):
        outputs = self.model(batch)
        probs = torch.stack([o["scores"] for o in outputs]).cpu()
        flops = torch.tensor([o["gflops"] * 1e9 for o in outputs], dtype=torch.float64)
        return probs, self._costs(len(batch), flops)


class ModuleStage(Stage):
    """A plain or TorchScript module: float images (B, C, H, W) -> logits (B, K)."""

    def __init__(self, module: nn.Module, *, name: str, class_names: Sequence[str],
                 cost: Optional[float] = None, train_datasets: Sequence[str] = (),
                 image_shape: Optional[Tuple[int, int, int]] = None):
        if cost is None:
            if isinstance(module, torch.jit.ScriptModule) or image_shape is None:
                raise CascadeConfigError(
                    f"cascade stage {name!r}: give its cost (CASCADE.STAGE_COSTS); FLOPs are "
                    f"counted only for a plain nn.Module with a known image_shape")
            cost, _ = static_flops(module, module, torch.zeros((1,) + tuple(image_shape)))
        super().__init__(name, class_names, train_datasets, cost)
        self.module = module.eval()

    @torch.no_grad()
    def predict(self, batch):
        device = next(iter(self.module.parameters()), torch.empty(0)).device
        images = torch.stack([d["image"] for d in batch]).to(device).float()
        return F.softmax(self.module(images), dim=1).cpu(), self._costs(len(batch))


class HumanExpertStage(Stage):
    """The human in the loop, simulated from the labels (see the module docstring)."""

    def __init__(self, *, class_names: Sequence[str], cost: float, accuracy: float = 1.0,
                 seed: int = 0):
        if not 0.0 <= accuracy <= 1.0:
            raise CascadeConfigError(f"CASCADE.HUMAN.ACCURACY={accuracy}: expected a "
                                     f"probability in [0, 1]")
        super().__init__("human_expert", class_names, (), cost)
        self.accuracy, self.seed = accuracy, seed

    def describe(self) -> Dict:
        return {**super().describe(), "accuracy": self.accuracy, "seed": self.seed}

    def answer(self, label: int, image_id) -> int:
        """The simulated answer for the image ``image_id`` whose true class is ``label``."""
        rng = np.random.default_rng([self.seed, zlib.crc32(str(image_id).encode())])
        if rng.random() < self.accuracy:
            return label
        k = len(self.class_names)
        return (label + 1 + int(rng.integers(k - 1))) % k

    def predict(self, batch):
        answers = torch.tensor([self.answer(int(d["label"]), d["image_id"]) for d in batch])
        probs = F.one_hot(answers, len(self.class_names)).float()
        return probs, self._costs(len(batch))


def measure_latency(stage: Stage, inputs: List[Dict], batch_size: int,
                    repeats: int = 3) -> float:
    """Seconds per input of ``stage`` on ``inputs`` in batches of ``batch_size``: the median
    over ``repeats`` passes after one warm-up batch."""
    stage.predict(inputs[:batch_size])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(inputs), batch_size):
            stage.predict(inputs[i:i + batch_size])
        times.append((time.perf_counter() - start) / len(inputs))
    return float(np.median(times))


def check_label_spaces(stages: Sequence[Stage], class_names: Sequence[str],
                       dataset: str) -> None:
    """Every stage must predict exactly ``class_names`` (those of ``dataset``), in order."""
    for stage in stages:
        if list(stage.class_names) != list(class_names):
            raise CascadeConfigError(
                f"cascade stage {stage.name!r} predicts the classes {stage.class_names} but "
                f"{dataset!r} has {list(class_names)}: every stage needs the same label space")


def record_key(record: Dict) -> Tuple:
    """What identifies the image of a classification record across datasets: (reader,
    argument, index) of an array-backed record, (file, crop box) of a file-backed one."""
    if "array" in record:
        reader, argument = record["array"]
        return ("array", reader, str(argument), int(record["index"]))
    return ("file", str(record["file_name"]), tuple(record.get("crop_box") or ()))


def check_calibration_split(calib_dataset: str, stages: Sequence[Stage]) -> None:
    """The calibration split must be non-empty and share no image with the training data of
    any stage (Fig. 4.5: confidence on training images is overconfident)."""
    calib = DatasetCatalog.get(calib_dataset)
    if not calib:
        raise CascadeConfigError(f"calibration split {calib_dataset!r} "
                                 f"(CASCADE.CALIB_DATASET) is empty")
    calib_keys = {record_key(r) for r in calib}
    shared_with: Dict[str, int] = {}  # each training set is read once, however many stages
    for stage in stages:
        for train in stage.train_datasets:
            if train not in shared_with:
                shared_with[train] = len(calib_keys & {record_key(r)
                                                       for r in DatasetCatalog.get(train)})
            shared = shared_with[train]
            if shared:
                raise CascadeConfigError(
                    f"calibration split {calib_dataset!r} shares {shared} images with "
                    f"{train!r}, training data of cascade stage {stage.name!r}: fit the IDK "
                    f"classifiers on held-out data (e.g. fashion_mnist_calib for models trained "
                    f"on fashion_mnist_train)")
