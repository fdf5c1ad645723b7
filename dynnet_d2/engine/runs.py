"""A finished training run, read back: the config it was trained with (the ``config.yaml`` that
``tools/train_net.py`` writes into its ``OUTPUT_DIR``) and its weights, loaded strictly.

Benchmarks evaluate and time trained models through these two functions, never by rebuilding a
model from a second copy of the options it was trained with (a SkipNet SDV baseline trained at
one skip rate was once evaluated at the default one that way).
"""
import os
from pathlib import Path
from typing import Sequence, Tuple, Union

from torch import nn

from ..config import load_config
from .checkpoint import load_strictly
from .trainer import DynnetTrainer

PathLike = Union[str, Path]


def run_config(folder: PathLike, device: str = "cpu", opts: Sequence = ()):
    """The config of the run in ``folder`` (its ``config.yaml``) on ``device``, with ``opts``
    (e.g. an inference-only key) on top; ``FileNotFoundError`` naming the file when the run
    wrote none."""
    path = Path(folder) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: no training run wrote its config into "
                                f"{folder} (tools/train_net.py does)")
    return load_config(str(path), ["MODEL.DEVICE", device, *opts])


def load_trained_model(folder: PathLike, device: str = "cpu", opts: Sequence = (),
                       weights: str = "model_final.pth") -> Tuple[object, nn.Module]:
    """``(cfg, model)`` of the run in ``folder``: the model built from :func:`run_config` with its
    ``weights`` loaded strictly (every parameter present and of the same shape), in eval mode."""
    cfg = run_config(folder, device, opts)
    model = DynnetTrainer.build_model(cfg)
    load_strictly(model, cfg, os.path.join(str(folder), weights))
    return cfg, model.eval()
