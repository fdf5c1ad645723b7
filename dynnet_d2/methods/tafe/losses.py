"""TAFE-Net's losses (thesis ch. 5, Eq. 5.6-5.8).

Eq. 5.6, the calibrated multi-class loss, is the cross-entropy of the compatibility scores
``F(x_i; theta_t)`` ``(B, T)`` taken as logits over the tasks: with one-hot labels it is
``ImageClassifier``'s ``loss_cls``. Eq. 5.7, :func:`embedding_loss`, pulls each task-aware
feature embedding towards its task's embedding when the image belongs to the task and away
otherwise; Eq. 5.8 adds it with weight beta (``MODEL.TAFE.BETA``).
"""
import torch
import torch.nn.functional as F


def embedding_loss(tafe: torch.Tensor, task_embedding: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """Eq. 5.7: ``tafe`` ``(B, T, d)``, ``task_embedding`` ``(T, d)`` (projected into the TAFE
    space), ``labels`` ``(B,)`` in [0, T) -> the mean over the B x T pairs of
    ``(max(cos(TAFE(x_i; t), e_t), 0) - y_t^i)^2``."""
    if tafe.dim() != 3 or task_embedding.shape != tafe.shape[1:] or labels.shape != tafe.shape[:1]:
        raise ValueError(f"embedding_loss: TAFEs {tuple(tafe.shape)} (B, T, d), task embeddings "
                         f"{tuple(task_embedding.shape)} (T, d) and labels {tuple(labels.shape)} "
                         f"(B,) do not fit")
    similarity = F.cosine_similarity(tafe, task_embedding[None], dim=2).clamp(min=0)
    targets = F.one_hot(labels, tafe.shape[1]).to(similarity.dtype)
    return ((similarity - targets) ** 2).mean()
