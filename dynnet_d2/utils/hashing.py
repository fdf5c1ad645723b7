"""Keys of on-disk caches: hashes of JSON-able values and of a model's weights, and the cache
root folder. Shared by TFA's last-layer feature caches and the classifier's pooled-feature
caches, so a key means the same thing in both."""
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Sequence

import torch


def hash_json(obj) -> str:
    """20 hex digits of the SHA-256 of ``obj`` as sorted-key JSON (``str`` for the rest)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def weights_hash(model: torch.nn.Module, parts: Sequence[str]) -> str:
    """20 hex digits hashing the names and bytes of the parameters and buffers of ``model``
    under the attribute paths ``parts`` (e.g. ``("backbone",)``)."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        if not any(name.startswith(part + ".") for part in parts):
            continue
        digest.update(name.encode())
        tensor = state[name].detach().cpu().contiguous().reshape(-1)
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def flatten_config(node, prefix: str) -> Dict[str, object]:
    """``{"PREFIX.KEY.SUB": value}`` for every leaf of the config node ``node``."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{prefix}.{key}"))
        else:
            flat[f"{prefix}.{key}"] = value
    return flat


def cache_root(configured: str) -> Path:
    """The folder of the feature caches: ``configured``, else ``$DYNNET_CACHE``, else
    ``~/.cache/dynnet_d2``."""
    return Path(configured or os.environ.get("DYNNET_CACHE") or "~/.cache/dynnet_d2").expanduser()
