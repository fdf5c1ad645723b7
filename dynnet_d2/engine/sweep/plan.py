"""What a few-shot sweep runs (thesis §7.3: many sampled K-shot sets per split, shot and method):
the grid of splits x shots x seeds x methods as :class:`Run` s, each with its own folder.

A method is a config plus how it starts:

* ``finetune``: from the split's base model after randinit surgery (TFA w/ cos, TFA w/ fc,
  FRCN+ft-full, any config a user names); the base model is trained once per split;
* ``joint``: trained from ImageNet on base data plus the novel K shots (FRCN+joint);
* ``base_only``: the surgery checkpoint evaluated without fine-tuning, once per split, with the
  head the base model was trained with (the FC classifier: the ``ft_fc`` config; the cosine one
  would drop the FC classifier's bias).

Folders: ``<sweep>/<method>/split<S>_<K>shot_seed<N>`` (``<sweep>/base_only/split<S>``).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[3]
TFA_CONFIGS = REPO / "configs" / "TFA"
BASE_CONFIG = TFA_CONFIGS / "faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"


@dataclass(frozen=True)
class Method:
    """A row of the benchmark table."""

    name: str  # folder name and command-line name
    label: str  # name in tables
    config: str
    kind: str  # "finetune", "joint" or "base_only"


BUILTIN_METHODS: Dict[str, Method] = {m.name: m for m in [
    Method("cos", "TFA w/ cos", str(TFA_CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"), "finetune"),  # noqa: E501
    Method("fc", "TFA w/ fc", str(TFA_CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_fc_all_100itxK_shapes.yaml"), "finetune"),  # noqa: E501
    Method("full", "FRCN+ft-full", str(TFA_CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_full_all_100itxK_shapes.yaml"), "finetune"),  # noqa: E501
    Method("joint", "FRCN+joint", str(TFA_CONFIGS / "faster_rcnn_MobileNetV2_FPN_joint_2800it_shapes.yaml"), "joint"),  # noqa: E501
    Method("base_only", "Base only", str(TFA_CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_fc_all_100itxK_shapes.yaml"), "base_only"),  # noqa: E501
]}


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
