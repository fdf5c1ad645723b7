"""TFA's pipeline (thesis §7.2) as steps a tool strings together: base training (or reuse,
:func:`dynnet_d2.engine.train_or_reuse`), checkpoint surgery (:func:`randinit_surgery`) and
K-shot fine-tuning; the all/base/novel table is
:func:`dynnet_d2.evaluation.fewshot.generalized_table`.

Each step skips work already done (a finished run is reused, an existing surgery file kept), so
an interrupted pipeline restarts where it stopped.
"""
from pathlib import Path
from typing import Optional

import torch

from .surgery import (
    ClassLists,
    checkpoint_surgery,
    dataset_classes,
    load_checkpoint,
    save_checkpoint,
)


def randinit_surgery(base_checkpoint: str, base_dataset: str, all_dataset: str,
                     output: Optional[str] = None, seed: int = 0) -> Path:
    """``tools/ckpt_surgery.py --method randinit`` on ``base_checkpoint``: rows of the classes of
    ``base_dataset`` copied by name into a predictor for the classes of ``all_dataset``, novel
    rows drawn with ``seed``. Writes ``model_reset_surgery.pth`` beside the checkpoint (or to
    ``output``) unless it exists; returns its path."""
    path = Path(output) if output else Path(base_checkpoint).parent / "model_reset_surgery.pth"
    if path.is_file():
        return path
    base, target = dataset_classes(base_dataset), dataset_classes(all_dataset)
    classes = ClassLists(base, target, [c for c in target if c not in base])
    checkpoint = checkpoint_surgery("randinit", load_checkpoint(base_checkpoint), classes,
                                    generator=torch.Generator().manual_seed(seed))
    save_checkpoint(checkpoint, path)
    return path
