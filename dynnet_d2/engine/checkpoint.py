"""A DetectionCheckpointer whose files are written atomically (a crash never leaves half a .pth)."""
import os
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..utils.io import atomic_open


class AtomicDetectionCheckpointer(DetectionCheckpointer):
    """Writes ``<name>.pth`` and ``last_checkpoint`` through a temporary file and a rename,
    so ``--resume`` always finds a complete checkpoint."""

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        with atomic_open(save_file, "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        with atomic_open(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(last_filename_basename)
