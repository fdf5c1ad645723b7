"""What a few-shot sweep runs (thesis §7.3: many sampled K-shot sets per split, shot and method):
the grid of splits x shots x seeds x methods as :class:`Run` s, each with its own folder.

A method (:class:`~dynnet_d2.engine.fewshot_methods.FewShotMethod`, declared by the method
package that provides it, e.g. TFA's w/ cos, w/ fc, FRCN+ft-full, FRCN+joint and base-only) is
a config plus how it starts:

* ``finetune``: from the split's base model made into a model of all classes by the declared
  base's preparation (TFA: randinit surgery); any fine-tuning config a user names starts so too;
  the base model is trained once per split;
* ``joint``: trained from its config's weights on base data plus the novel K shots;
* ``base_only``: the prepared base model evaluated without fine-tuning, once per split.

Folders: ``<sweep>/<method>/split<S>_<K>shot_seed<N>`` (``<sweep>/base_only/split<S>``).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ...engine.fewshot_methods import FEWSHOT_METHODS
from ...engine.fewshot_methods import FewShotMethod as Method

BUILTIN_METHODS: Dict[str, Method] = FEWSHOT_METHODS


def method_from_arg(arg: str) -> Method:
    """A built-in method name, or ``NAME=CONFIG.yaml`` / ``CONFIG.yaml`` for a user's fine-tuning
    config (named by its file stem)."""
    if arg in BUILTIN_METHODS:
        return BUILTIN_METHODS[arg]
    name, _, config = arg.rpartition("=") if "=" in arg else (Path(arg).stem, "", arg)
    if not config.endswith((".yaml", ".yml")):
        raise ValueError(f"method {arg!r}: expected one of {sorted(BUILTIN_METHODS)}, a config "
                         f"file (.yaml) or NAME=CONFIG.yaml")
    if not Path(config).is_file():
        raise FileNotFoundError(f"method {arg!r}: config file {config!r} does not exist")
    if name in BUILTIN_METHODS or "/" in name or not name:
        raise ValueError(f"method {arg!r}: {name!r} cannot name a user method (built-in or empty "
                         f"names and '/' are not allowed)")
    return Method(name, name, config, "finetune")


@dataclass(frozen=True)
class Run:
    """One training + evaluation (or evaluation only) of a sweep."""

    method: Method
    split: int
    shot: int
    seed: int
    output_dir: str
    opts: Tuple = field(default=())  # KEY VALUE overrides after the sweep's own
    max_iter: Optional[int] = None  # total iterations instead of the config's schedule

    @property
    def name(self) -> str:
        return str(Path(self.output_dir).relative_to(Path(self.output_dir).parents[1]))


def run_folder(sweep_dir: str, method: Method, split: int, shot: int, seed: int) -> str:
    if method.kind == "base_only":
        return str(Path(sweep_dir) / method.name / f"split{split}")
    return str(Path(sweep_dir) / method.name / f"split{split}_{shot}shot_seed{seed}")


def expand_grid(sweep_dir: str, methods: Sequence[Method], splits: Iterable[int],
                shots: Iterable[int], seeds: Iterable[int],
                max_iter: Optional[Dict[int, int]] = None) -> List[Run]:
    """Every run of the grid, base-only once per split; ``max_iter`` maps a shot to its total
    iteration count (overriding the config's per-shot schedule, steps kept at the same
    fractions)."""
    runs = []
    for split in splits:
        for method in methods:
            if method.kind == "base_only":
                runs.append(Run(method, split, 1, 0, run_folder(sweep_dir, method, split, 1, 0)))
                continue
            for shot in shots:
                iters = (max_iter or {}).get(shot)
                for seed in seeds:
                    runs.append(Run(method, split, shot, seed,
                                    run_folder(sweep_dir, method, split, shot, seed),
                                    max_iter=iters))
    return runs
