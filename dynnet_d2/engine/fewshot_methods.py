"""The few-shot methods a sweep (:mod:`dynnet_d2.experiments.sweep`, thesis §7.3: many sampled
K-shot sets per split, shot and method) can run, declared by the methods that provide them, so
that the sweep imports no method.

* :class:`FewShotMethod`: a row of the benchmark table, a config plus how its runs start:
  ``"finetune"`` from the split's base model made into a model of all classes, ``"joint"`` from
  the config's own weights, ``"base_only"`` that base model evaluated without training
  (``"base"`` is the base training itself).
* :class:`FewShotBase`: how the base models are trained (a config, once per split) and turned
  into the checkpoint the fine-tuning runs start from (TFA: randinit checkpoint surgery), and
  the check of a trained base checkpoint a user names (``--base-weights``). A method names the
  base its runs start from (``FewShotMethod.base``); ``"default"`` is the one ``--base-config``
  and ``--base-weights`` replace.

TFA registers its methods (TFA w/ cos, w/ fc, FRCN+ft-full, FRCN+joint, base only) and the
default base (:mod:`dynnet_d2.methods.tfa.sweep`); FSRW its own base and methods
(:mod:`dynnet_d2.methods.fsrw.sweep`).
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional

KINDS = ("finetune", "joint", "base_only", "base")
DEFAULT_BASE = "default"  # the base --base-config and --base-weights replace


@dataclass(frozen=True)
class FewShotMethod:
    """A row of the benchmark table (see the module docstring)."""

    name: str  # folder name and command-line name
    label: str  # name in tables
    config: str
    kind: str  # one of KINDS
    base: str = DEFAULT_BASE  # the registered FewShotBase its finetune / base_only runs start from


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
_BASES: Dict[str, FewShotBase] = {}


def register_fewshot_method(method: FewShotMethod) -> None:
    """Make ``method`` available to the sweep by its name."""
    if method.kind not in KINDS:
        raise ValueError(f"few-shot method {method.name!r}: kind {method.kind!r}, expected one "
                         f"of {KINDS}")
    FEWSHOT_METHODS[method.name] = method


def register_fewshot_base(base: FewShotBase, name: str = DEFAULT_BASE) -> None:
    """Declare how the runs of the methods whose ``base`` is ``name`` start (the last
    declaration of a name wins)."""
    _BASES[name] = base


def fewshot_base(name: str = DEFAULT_BASE) -> FewShotBase:
    """The :class:`FewShotBase` declared as ``name``; ``LookupError`` when none was."""
    base: Optional[FewShotBase] = _BASES.get(name)
    if base is None:
        raise LookupError(f"no few-shot base {name!r} was declared (declared: {sorted(_BASES)}; "
                          f"dynnet_d2.engine.fewshot_methods.register_fewshot_base)")
    return base
