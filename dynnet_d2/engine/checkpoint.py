"""``DynnetCheckpointer``: Detectron2's DetectionCheckpointer, safe against crashes and bad files.

* ``model_*.pth`` and ``last_checkpoint`` are written through a temporary file and a rename, so
  ``--resume`` always finds a complete checkpoint; the temporaries a killed save left behind are
  deleted when a checkpointer with a save directory starts (on the main process).
* A file that is not a loadable checkpoint raises :class:`CheckpointLoadError` naming it.
* ``strict=True`` (evaluation): a checkpoint that lacks parameters of the model, whose shapes
  differ (e.g. trained for another number of classes), or whose box predictor has parameters the
  model's lacks (e.g. the ``cls_score.bias`` of an FC classifier loaded into a cosine one, which
  has none) raises :class:`CheckpointMismatchError` instead of leaving parameters randomly
  initialised or dropping trained ones.
* ``predictor_must_fit=True`` (few-shot fine-tuning): a checkpoint whose box predictor has
  another shape raises :class:`CheckpointMismatchError` saying to run checkpoint surgery first
  (Detectron2 would re-initialise the predictor silently, base rows included). The predictor is
  the parameters under ``predictor_prefix`` (Detectron2's box predictor unless the
  meta-architecture declares another: :func:`predictor_checks`).
* ``frozen_parts`` (fine-tuning with frozen parts, :func:`frozen_parts`): every parameter and
  buffer of a part the config freezes must load from the weights (they never train, so a part
  left randomly initialised would make the whole fine-tuning meaningless); an empty
  ``MODEL.WEIGHTS`` or a checkpoint that does not provide them raises
  :class:`CheckpointMismatchError` naming the parts, before any training or feature caching.
"""
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Type, Union

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils import comm

from ..config import config_value
from ..modeling.freeze import FREEZE_KEYS
from ..modeling.meta_arch import BOX_PREDICTOR_PREFIX, RANDINIT_SURGERY_FIX, meta_architecture_needs
from ..utils.io import atomic_open, remove_stale_temporaries

# Targets of our atomic writes in a checkpoint directory (names without the temporary suffix).
CHECKPOINT_FILES = r"[^/]+\.pth|last_checkpoint"


class CheckpointLoadError(ValueError):
    """A weights file is not a checkpoint PyTorch can load."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not provide every parameter of the model with the model's shape."""


def read_checkpoint_file(path: Union[str, Path], what: str = "checkpoint",
                         error: Type[Exception] = CheckpointLoadError) -> dict:
    """A checkpoint file as ``{"model": state_dict, ...}`` (a bare state dict is wrapped), loaded
    on the CPU without running pickled code; ``error`` naming ``what`` and the file when it is
    missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {str(path)!r} does not exist (or is not a file)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure means: not a checkpoint we can read
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(f"{what} {str(path)!r} is not a checkpoint PyTorch can load "
                    f"({type(e).__name__}: {reason})") from e
    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), Mapping):
        return dict(loaded)
    if isinstance(loaded, Mapping) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return {"model": loaded}
    raise error(f"{what} {str(path)!r} is neither a state dict nor a dict with a 'model' "
                "state dict")


def _describe(keys, limit: int = 5) -> str:
    keys = list(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(str(k) for k in keys[:limit]) + more


def predictor_checks(cfg, *, training: bool = True) -> Dict[str, Any]:
    """:class:`DynnetCheckpointer`'s keyword arguments for the predictor of ``cfg``'s
    meta-architecture, as declared (:class:`~dynnet_d2.modeling.meta_arch.MetaArchitectureNeeds`):
    its state-dict prefix and, for ``training``, whether the checkpoint must hold it fitted and
    the fix an error names."""
    needs = meta_architecture_needs(cfg)
    if not training:
        return {"predictor_prefix": needs.predictor_prefix}
    return {"predictor_prefix": needs.predictor_prefix,
            "predictor_must_fit": needs.predictor_must_fit(cfg),
            "predictor_fix": needs.predictor_fix}


def load_strictly(model, cfg, path: str) -> None:
    """Load ``path`` into ``model`` (built from ``cfg``) for evaluation: strictly, the predictor
    where ``cfg``'s meta-architecture declares it (:func:`predictor_checks`)."""
    DynnetCheckpointer(model, strict=True, **predictor_checks(cfg, training=False)).load(path)


def frozen_parts(cfg) -> Dict[str, str]:
    """``{module path: config key}`` of the parts of the model that ``cfg`` freezes
    (:data:`dynnet_d2.modeling.freeze.FREEZE_KEYS`), e.g. ``{"backbone":
    "MODEL.BACKBONE.FREEZE"}``; empty when nothing is frozen."""
    return {path: key for key, path in FREEZE_KEYS.items() if config_value(cfg, key)}


def _fix_frozen(parts: Mapping[str, str]) -> str:
    return (f"They never train, so they would stay randomly initialised. Fine-tune from a base "
            f"model after checkpoint surgery (tools/ckpt_surgery.py --help), or "
            f"set {' / '.join(sorted(set(parts.values())))} False to train them.")


class DynnetCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer with atomic saves, stale-temporary clean-up, clear load errors and an
    optional ``strict`` load (see the module docstring)."""

    def __init__(self, model, save_dir: str = "", *, strict: bool = False,
                 predictor_must_fit: bool = False, predictor_fix: str = RANDINIT_SURGERY_FIX,
                 predictor_prefix: str = BOX_PREDICTOR_PREFIX,
                 frozen_parts: Optional[Mapping[str, str]] = None, **kwargs: Any):
        super().__init__(model, save_dir, **kwargs)
        self.strict = strict
        self.predictor_must_fit, self.predictor_fix = predictor_must_fit, predictor_fix
        self.predictor_prefix = predictor_prefix
        self.frozen_parts = dict(frozen_parts or {})
        if save_dir and comm.is_main_process():
            for path in remove_stale_temporaries(save_dir, CHECKPOINT_FILES):
                self.logger.info(f"Removed {path}, left by an interrupted checkpoint save")

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

    def load(self, path: str, checkpointables: Optional[list] = None) -> Dict[str, Any]:
        if not path and self.frozen_parts:
            raise CheckpointMismatchError(
                f"MODEL.WEIGHTS is empty, but the config freezes "
                f"{', '.join(f'{part} ({key})' for part, key in self.frozen_parts.items())}. "
                + _fix_frozen(self.frozen_parts))
        return super().load(path, checkpointables)

    def _load_file(self, filename: str) -> Dict[str, Any]:
        try:
            return super()._load_file(filename)
        except Exception as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointLoadError(
                f"{filename!r} is not a valid checkpoint: PyTorch cannot load it "
                f"({type(e).__name__}: {reason}). Check MODEL.WEIGHTS, or delete a damaged file."
            ) from e

    def _load_model(self, checkpoint: Any):
        incompatible = super()._load_model(checkpoint)
        predictor = [(key, ckpt, model) for key, ckpt, model in incompatible.incorrect_shapes
                     if key.startswith(self.predictor_prefix)]
        if self.predictor_must_fit and predictor:
            raise CheckpointMismatchError(
                "the predictor of the checkpoint does not fit this K-shot fine-tuning: "
                + _describe(f"{key} (checkpoint {tuple(ckpt)}, model {tuple(model)})"
                            for key, ckpt, model in predictor)
                + ". " + self.predictor_fix)
        self._check_frozen_parts_loaded(incompatible)
        unexpected = [key for key in incompatible.unexpected_keys
                      if key.startswith(self.predictor_prefix)]
        if self.strict and (incompatible.missing_keys or incompatible.incorrect_shapes
                            or unexpected):
            # A reshaped key was dropped before loading, so it is also among the missing ones.
            problems = []
            if incompatible.incorrect_shapes:
                problems.append("shapes differ for " + _describe(
                    f"{key} (checkpoint {tuple(ckpt)}, model {tuple(model)})"
                    for key, ckpt, model in incompatible.incorrect_shapes))
            reshaped = {key for key, _, _ in incompatible.incorrect_shapes}
            missing = [key for key in incompatible.missing_keys if key not in reshaped]
            if missing:
                problems.append("the checkpoint has no " + _describe(missing))
            if unexpected:
                problems.append("the model's box predictor has no " + _describe(unexpected)
                                + " (trained with another kind of predictor, e.g. an FC "
                                "classifier evaluated with a cosine one, MODEL.ROI_HEADS."
                                "OUTPUT_LAYER?)")
            raise CheckpointMismatchError(
                "the checkpoint does not fit the model built from this config: "
                + "; ".join(problems) + ". Was it trained with another config (e.g. another "
                "number of classes)? Set TEST.ALLOW_UNTRAINED True to evaluate such a model anyway."
            )
        return incompatible

    def _check_frozen_parts_loaded(self, incompatible) -> None:
        """Every tensor of :attr:`frozen_parts` was loaded (none missing or reshaped)."""
        if not self.frozen_parts:
            return
        not_loaded = set(incompatible.missing_keys)
        not_loaded.update(key for key, _, _ in incompatible.incorrect_shapes)
        keys = list(self.model.state_dict())
        problems = []
        for part, config_key in self.frozen_parts.items():
            in_part = [k for k in keys if k.startswith(part + ".")]
            missing = [k for k in in_part if k in not_loaded]
            if missing:
                problems.append(f"{part} ({config_key}): {len(missing)} of {len(in_part)} "
                                f"tensors not loaded, e.g. {_describe(missing, 2)}")
        if problems:
            raise CheckpointMismatchError(
                "the weights do not provide the parts of the model this config freezes: "
                + "; ".join(problems) + ". " + _fix_frozen(self.frozen_parts))


def trained_iterations(checkpoint: str) -> str:
    """``"N iterations"`` a Detectron2 checkpoint file was trained for (its ``iteration`` + 1),
    or that it does not record them."""
    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure means: not a checkpoint we can read
        raise CheckpointLoadError(f"{checkpoint!r} is not a checkpoint PyTorch can load "
                                  f"({type(e).__name__})") from e
    iteration = loaded.get("iteration") if isinstance(loaded, dict) else None
    return (f"{int(iteration) + 1} iterations" if iteration is not None
            else "iterations not recorded in the checkpoint")
