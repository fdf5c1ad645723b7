"""The few-shot methods a sweep (:mod:`dynnet_d2.experiments.sweep`, thesis §7.3: many sampled
K-shot sets per split, shot and method) can run, declared by the methods that provide them, so
that the sweep imports no method.

* :class:`FewShotMethod`: a row of the benchmark table, a config plus how its runs start:
  ``"finetune"`` from the split's base model made into a model of all classes, ``"joint"`` from
  the config's own weights, ``"base_only"`` that base model evaluated without training
  (``"base"`` is the base training itself).
* :class:`FewShotBase`: how the base models are trained (a config, once per split) and turned
  into the checkpoint the fine-tuning runs start from (TFA: randinit checkpoint surgery), and
  the check of a trained base checkpoint a user names (``--base-weights``).

TFA registers its methods (TFA w/ cos, w/ fc, FRCN+ft-full, FRCN+joint, base only) and its base
(:mod:`dynnet_d2.methods.tfa.sweep`).
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional

KINDS = ("finetune", "joint", "base_only", "base")


@dataclass(frozen=True)
class FewShotMethod:
    """A row of the benchmark table (see the module docstring)."""

    name: str  # folder name and command-line name
    label: str  # name in tables
    config: str
    kind: str  # one of KINDS


@dataclass(frozen=True)
class FewShotBase:
    """How fine-tuning methods start (see the module docstring).

    Attributes:
        config: the base training config (loaded per split with ``FEWSHOT.SPLIT``).
        prepare: ``(base checkpoint, base training set, all-class test set) -> path`` of the
            checkpoint the fine-tuning and base-only runs of that split start from; it skips
            work already done.
        check_checkpoint: ``(checkpoint, base training set, what, whose) -> None``: raise a
            ``ValueError`` naming ``what`` (the argument that named it) when a checkpoint is not
            a trained base model of that training set (``whose``: e.g. "split 1").
    """

    config: str
    prepare: Callable[[str, str, str], str]
    check_checkpoint: Callable[[str, str, str, str], None]


FEWSHOT_METHODS: Dict[str, FewShotMethod] = {}
_BASE: Dict[str, FewShotBase] = {}


def register_fewshot_method(method: FewShotMethod) -> None:
    """Make ``method`` available to the sweep by its name."""
    if method.kind not in KINDS:
        raise ValueError(f"few-shot method {method.name!r}: kind {method.kind!r}, expected one "
                         f"of {KINDS}")
    FEWSHOT_METHODS[method.name] = method


def register_fewshot_base(base: FewShotBase) -> None:
    """Declare how the sweep's fine-tuning methods start (one declaration; the last wins)."""
    _BASE["default"] = base


def fewshot_base() -> FewShotBase:
    """The declared :class:`FewShotBase`; ``LookupError`` when no method declared one."""
    base: Optional[FewShotBase] = _BASE.get("default")
    if base is None:
        raise LookupError("no few-shot method declared how fine-tuning starts from a base model "
                          "(dynnet_d2.engine.fewshot_methods.register_fewshot_base)")
    return base
