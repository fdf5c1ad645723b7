"""Analyses of a trained DeepMoE ImageClassifier (thesis §3.3):

* :func:`gate_statistics`: per test image its mixture weights ``e`` ``(N, E)``, the fraction of
  open channels of every gated layer ``(N, L)`` and its prediction ``(N,)``; averaged per class
  (:func:`dynnet_d2.utils.stats.per_class_mean`) it is the channel-utilisation plot;
* :func:`shuffled_accuracy`: gate-embedding shuffling (Fig. 3.4): each class's images classified
  with their own mixture weights, with those of random images of the other classes of the same
  coarse group, and with those of random images of the other groups. If the gates carry
  class-specific information, accuracy drops, and drops less within a group of similar classes.

``images`` are ``(N, C, H, W)`` uint8 tensors in ``INPUT.FORMAT``; the model normalizes them.
"""
from typing import Dict, Mapping, Sequence

import torch

#: Fashion-MNIST's classes in three coarse groups (Fig. 3.4 analogue): tops (T-shirt/top,
#: Pullover, Coat, Shirt), footwear (Sandal, Sneaker, Ankle boot), the rest (Trouser, Dress,
#: Bag).
FASHION_MNIST_GROUPS = {"tops": (0, 2, 4, 6), "footwear": (5, 7, 9), "rest": (1, 3, 8)}


def _batches(model, images: torch.Tensor, batch: int):
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch].to(model.device)
        yield start, (chunk.float() - model.pixel_mean) / model.pixel_std


@torch.no_grad()
def gate_statistics(model, images: torch.Tensor, batch: int = 256) -> Dict[str, torch.Tensor]:
    """``{"embeddings": (N, E), "open_fraction": (N, L), "predictions": (N,)}`` of the DeepMoE
    classifier ``model`` (evaluation mode) on ``images``."""
    model.eval()
    moe = model.backbone
    embeddings, opened, predictions = [], [], []
    for _, normalized in _batches(model, images, batch):
        predictions.append(model.logits(normalized).argmax(1).cpu())
        embeddings.append(moe.embedding_out.cpu())
        opened.append(torch.stack([(g > 0).float().mean(1) for g in moe.gates], dim=1).cpu())
    return {"embeddings": torch.cat(embeddings), "open_fraction": torch.cat(opened),
            "predictions": torch.cat(predictions)}


@torch.no_grad()
def _accuracy_with(model, images: torch.Tensor, labels: torch.Tensor,
                   embeddings: torch.Tensor, batch: int) -> float:
    correct = 0
    for start, normalized in _batches(model, images, batch):
        forced = embeddings[start:start + batch].to(model.device)
        with model.backbone.forced_embedding(forced):
            predicted = model.logits(normalized).argmax(1).cpu()
        correct += int((predicted == labels[start:start + batch]).sum())
    return 100.0 * correct / len(images)


def shuffled_accuracy(model, images: torch.Tensor, labels: torch.Tensor,
                      embeddings: torch.Tensor, groups: Mapping[str, Sequence[int]], *,
                      seed: int = 0, batch: int = 256) -> Dict[int, Dict[str, float]]:
    """``{class: {"own", "same_group", "other_groups"}}``: top-1 (%) on the class's images with
    the gates of their own mixture weights ``embeddings`` (from :func:`gate_statistics`), of a
    random image (drawn with ``seed``, one per image) of another class of its group in
    ``groups``, and of a random image of a class of another group."""
    group_of = {c: name for name, classes in groups.items() for c in classes}
    label_list = labels.tolist()
    missing = sorted(set(label_list) - set(group_of))
    if missing:
        raise ValueError(f"classes {missing} are in no group of {dict(groups)}")
    generator = torch.Generator().manual_seed(seed)
    in_group = [group_of[c] for c in label_list]
    results = {}
    for c in sorted(set(label_list)):
        mine = (labels == c).nonzero().squeeze(1)
        same = torch.tensor([i for i, (label, g) in enumerate(zip(label_list, in_group))
                             if g == group_of[c] and label != c], dtype=torch.long)
        other = torch.tensor([i for i, g in enumerate(in_group) if g != group_of[c]],
                             dtype=torch.long)
        row = {"own": _accuracy_with(model, images[mine], labels[mine], embeddings[mine], batch)}
        for key, pool in (("same_group", same), ("other_groups", other)):
            if len(pool) == 0:
                row[key] = float("nan")
                continue
            donors = pool[torch.randint(len(pool), (len(mine),), generator=generator)]
            row[key] = _accuracy_with(model, images[mine], labels[mine], embeddings[donors],
                                      batch)
        results[int(c)] = row
    return results
