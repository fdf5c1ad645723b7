"""Exact K-shot sampling of few-shot training sets (TFA's protocol, thesis §7.3, done exactly).

For each class ``c`` and seed, the K-shot set is a list of images whose ``c``-instances sum to
EXACTLY ``K``: an image is taken only if its ``c``-instances fit in the remaining budget, and an
image is never taken twice. The sets are nested across ``K`` for one seed (the 1-shot images
are the first images of the 2-shot set, ...). The order in which images are tried is a
permutation drawn from ``numpy.random.default_rng([seed, crc32(class name)])``: the result is a
function of (pool, class, seed, shots) only, byte-identical on every machine and process, and a
class's samples do not change when other classes are added. fsdet trimmed to K at load time
with unseeded randomness (so DDP ranks disagreed) and could count a duplicate image twice.

A *pool* maps each class name to ``{image key: number of instances of the class in it}``.
"""
import zlib
from typing import Dict, List, Mapping, Sequence

import numpy as np

# class name -> {image key -> instances of that class in the image}
Pool = Mapping[str, Mapping[str, int]]


class FewShotSamplingError(ValueError):
    """A K-shot set cannot be drawn (too few instances, or no exact fit)."""


def class_rng(seed: int, class_name: str) -> np.random.Generator:
    """The generator of ``class_name``'s samples for ``seed`` (independent of other classes)."""
    return np.random.default_rng([int(seed), zlib.crc32(class_name.encode("utf-8"))])


def sample_class(counts: Mapping[str, int], class_name: str, shots: Sequence[int],
                 seed: int, source: str = "the pool") -> Dict[int, List[str]]:
    """Nested exact-K samples of one class: ``{K: [image keys]}`` for each K in ``shots``.

    ``counts`` maps image key -> instances of ``class_name``; ``source`` names the dataset in
    error messages.
    """
    total = sum(counts.values())
    largest = max(shots)
    if total < largest:
        raise FewShotSamplingError(
            f"class {class_name!r} has only {total} instance(s) in {source}, fewer than "
            f"{largest} shots; use fewer shots or more data"
        )
    keys = sorted(counts)
    order = [keys[i] for i in class_rng(seed, class_name).permutation(len(keys))]
    taken: List[str] = []
    taken_set = set()
    have = 0
    samples = {}
    for k in sorted(set(shots)):
        for key in order:
            if have == k:
                break
            if key not in taken_set and counts[key] <= k - have:
                taken.append(key)
                taken_set.add(key)
                have += counts[key]
        if have != k:
            raise FewShotSamplingError(
                f"class {class_name!r}, seed {seed}: no untaken image of {source} fits the "
                f"remaining {k - have} of {k} shots (every candidate has more instances of the "
                f"class); choose other shots or seeds"
            )
        samples[k] = list(taken)
    return samples


def shots_up_to(all_shots: Sequence[int], shot: int) -> List[int]:
    """The shots of ``all_shots`` smaller than ``shot``, and ``shot``: what a first use of the
    ``shot``-shot set samples (smaller shots' samples do not depend on larger ones)."""
    return sorted({k for k in all_shots if k < shot} | {shot})


def sample_fewshot(pool: Pool, class_names: Sequence[str], shots: Sequence[int], seed: int,
                   source: str = "the pool") -> Dict[str, Dict[int, List[str]]]:
    """``{class: {K: [image keys]}}`` for every class of ``class_names`` (see module docstring).

    A class missing from ``pool`` or with fewer instances than the largest K is an error naming
    the class and its count.
    """
    if not shots or min(shots) < 1:
        raise ValueError(f"shots must be positive integers, got {list(shots)}")
    return {c: sample_class(pool.get(c, {}), c, shots, seed, source) for c in class_names}


def pool_from_dicts(dataset_dicts: Sequence[dict], class_names: Sequence[str],
                    image_key=lambda record: str(record["image_id"])) -> Dict[str, Dict[str, int]]:
    """The pool of Detectron2 dataset dicts whose ``category_id`` indexes ``class_names``.

    Crowd annotations (``iscrowd`` 1) are not instances a K-shot set can count.
    """
    pool: Dict[str, Dict[str, int]] = {c: {} for c in class_names}
    for record in dataset_dicts:
        key = image_key(record)
        for ann in record.get("annotations", ()):
            if ann.get("iscrowd", 0):
                continue
            per_image = pool[class_names[ann["category_id"]]]
            per_image[key] = per_image.get(key, 0) + 1
    return pool


def pool_from_coco(coco: Mapping,
                   class_of_category: Mapping[int, str]) -> Dict[str, Dict[str, int]]:
    """The pool of a parsed COCO JSON; ``class_of_category`` maps category id -> class name
    (categories it lacks are left out). Image keys are ``str(image id)``; crowd is not counted."""
    pool: Dict[str, Dict[str, int]] = {c: {} for c in class_of_category.values()}
    for ann in coco["annotations"]:
        class_name = class_of_category.get(ann["category_id"])
        if class_name is None or ann.get("iscrowd", 0):
            continue
        key = str(ann["image_id"])
        pool[class_name][key] = pool[class_name].get(key, 0) + 1
    return pool
