"""The class vectors a reweighting detector keeps for inference (thesis ch. 6, "Learning
Scheme": each class's vector is the mean over its support examples, so the reweighting module
is not run at test time).

:class:`ClassVectors` holds them as buffers, so checkpoints carry them: ``vectors`` ``(N, r)``
and ``key`` ``(1,)``, a fingerprint of the names of the N classes they belong to (0: none
computed). The predictors of both reweighting detectors own one, as ``class_vectors``.
"""
import hashlib
from typing import Sequence

import torch
from torch import nn

NO_VECTORS = ("{where}: this model has no stored class vectors; compute them from support "
              "examples with tools/fsrw_class_vectors.py (training stores them in every "
              "checkpoint it writes)")


def class_key(class_names: Sequence[str]) -> int:
    """A positive int64 fingerprint of the class names, in order."""
    digest = hashlib.sha256("\n".join(class_names).encode()).digest()
    return int.from_bytes(digest[:7], "big") or 1


class ClassVectorsError(RuntimeError):
    """Inference without usable stored class vectors."""


class ClassVectors(nn.Module):
    """The stored class vectors ``(num_classes, channels)`` and the key of their classes."""

    def __init__(self, num_classes: int, channels: int):
        super().__init__()
        self.register_buffer("vectors", torch.zeros(num_classes, channels))
        self.register_buffer("key", torch.zeros(1, dtype=torch.int64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the vectors and their key load together: when the vectors were left out (another
        # class count, e.g. phase 2 starting from phase 1's checkpoint), none are stored
        if prefix + "vectors" not in state_dict:
            state_dict.pop(prefix + "key", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def store(self, vectors: torch.Tensor, class_names: Sequence[str]) -> None:
        """Keep ``vectors`` ``(N, r)`` of ``class_names`` for inference."""
        if vectors.shape != self.vectors.shape or len(class_names) != len(self.vectors):
            raise ValueError(f"class vectors {tuple(vectors.shape)} of {len(class_names)} "
                             f"classes; expected {tuple(self.vectors.shape)}")
        self.vectors.copy_(vectors)
        self.key.fill_(class_key(class_names))

    def get(self) -> torch.Tensor:
        """The stored vectors ``(N, r)``; ``ClassVectorsError`` when none are."""
        if int(self.key) == 0:
            raise ClassVectorsError(NO_VECTORS.format(where="inference"))
        return self.vectors

    def check_class_names(self, class_names: Sequence[str], where: str) -> None:
        """``ClassVectorsError`` unless the stored vectors are those of ``class_names``."""
        stored = int(self.key)
        if stored == 0:
            raise ClassVectorsError(NO_VECTORS.format(where=where))
        if stored != class_key(class_names):
            raise ClassVectorsError(f"{where}: the stored class vectors are of other classes "
                                    f"than {list(class_names)}")
