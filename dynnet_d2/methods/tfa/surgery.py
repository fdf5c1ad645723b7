"""TFA checkpoint surgery: move a detector's last layer between class sets (thesis ch. 7).

TFA fine-tunes only the box predictor of a base-trained detector on base + novel classes. The
fine-tuning starts from a checkpoint whose predictor was edited here (fsdet's
``tools/ckpt_surgery.py``, same method names):

* :func:`randinit` — base model (C_b classes) -> predictor for the target classes: a row of a class
  the source knows is copied, a novel class gets weights ~ N(0, ``std``) and zero biases; the
  background row is the source's.
* :func:`remove` — drop the predictor (fine-tuning a predictor for the novel classes only).
* :func:`combine` — base rows and background from the base model, novel rows from a novel-only
  fine-tuned checkpoint.

Rows are mapped by class *name*, so VOC's "base classes first" and COCO/LVIS's id orders both work
(:func:`resolve_class_lists`, :func:`fsdet_class_lists`). The class-dependent parameters, for C
classes and D features (Detectron2's ``FastRCNNOutputLayers`` and ``MaskRCNNConvUpsampleHead``):

======================================  ==================  =====================================
``roi_heads.box_predictor.cls_score``   (C+1, D), (C+1,)    row c: class c; the LAST row: background
``roi_heads.box_predictor.bbox_pred``   (4C, D), (4C,)      rows 4c..4c+3: class c; (4, D): agnostic
``roi_heads.mask_head.predictor``       (C, D, 1, 1), (C,)  row c: class c; 1 row: agnostic (if any)
======================================  ==================  =====================================

The cosine classifier (TFA w/ cos) has no ``cls_score.bias``; its scalar ``scale`` and every other
parameter are kept from the (first) source. Keys may carry DDP's ``module.`` prefix (a state dict
saved from a wrapped model; Detectron2's checkpointer unwraps, others may not); they keep it.
A class-agnostic layer is kept as it is. Every problem is a :class:`SurgeryError` raised before
anything is written; the functions on state dicts never modify their inputs.
"""
import difflib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ...engine.checkpoint import read_checkpoint_file
from ...utils.io import atomic_open

DDP_PREFIX = "module."
BOX_DIM = 4  # rows of bbox_pred per class (dx, dy, dw, dh)
INIT_STD = 0.01  # fsdet: novel weights ~ N(0, 0.01), for the classifier and the box regressor
TRAINING_STATE_KEYS = ("optimizer", "scheduler", "trainer")  # "trainer": Detectron2 >= 0.3
METHODS = ("randinit", "remove", "combine")
OUTPUT_SUFFIX = {"randinit": "surgery", "remove": "remove", "combine": "combine"}  # fsdet's names
VOC_NUM_CLASSES = 20
COCO_NOVEL_IDS = (1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72)

StateDict = Mapping[str, torch.Tensor]
ClassList = Sequence[Optional[str]]


class SurgeryError(ValueError):
    """The checkpoints or class lists do not allow the requested surgery (message: one line)."""


@dataclass(frozen=True)
class PredictorKeys:
    """Parameter names (without ``.weight``/``.bias``) of the class-dependent layers."""

    cls_score: str = "roi_heads.box_predictor.cls_score"
    bbox_pred: str = "roi_heads.box_predictor.bbox_pred"
    mask_pred: str = "roi_heads.mask_head.predictor"  # optional: Mask R-CNN only


@dataclass(frozen=True)
class _Layer:
    """One class-dependent layer as found in one state dict."""

    prefix: str  # as stored, e.g. "module.roi_heads.box_predictor.cls_score"
    rows_per_class: int
    background: bool  # a last row for the background (classifier only)
    agnostic: bool  # one set of rows shared by all classes
    weight: torch.Tensor
    bias: Optional[torch.Tensor]

    @property
    def name(self) -> str:
        return self.prefix[len(DDP_PREFIX):] if self.prefix.startswith(DDP_PREFIX) else self.prefix

    def keys(self) -> Tuple[str, ...]:
        return (self.prefix + ".weight",) + ((self.prefix + ".bias",) if self.bias is not None
                                             else ())


@dataclass(frozen=True)
class ClassLists:
    """The class names of the rows of a surgery's inputs and output.

    ``source``: rows of the base checkpoint (``None`` = a row not to copy, e.g. an untrained
    novel row of fsdet's LVIS base model); ``target``: rows of the result; ``novel``: rows of a
    novel-only checkpoint (:func:`combine`'s second input).
    """

    source: List[Optional[str]]
    target: List[str]
    novel: List[str]


# ---------------------------------------------------------------------------------------------
# Reading a predictor


def _locate(state_dict: StateDict, name: str) -> Optional[str]:
    for prefix in (name, DDP_PREFIX + name):
        if prefix + ".weight" in state_dict:
            return prefix
    return None


def _missing_predictor(state_dict: StateDict, keys: PredictorKeys, what: str) -> SurgeryError:
    looked = f"{keys.cls_score}.weight and {keys.bbox_pred}.weight"
    near = [k for k in state_dict if "predictor" in k or "cls_score" in k or "bbox_pred" in k]
    hint = f"; keys that look related: {', '.join(near[:6])}" if near else ""
    return SurgeryError(f"{what} has no box predictor: looked for {looked} (also with DDP's "
                        f"'module.' prefix) among its {len(state_dict)} keys{hint}")


def _layer(state_dict: StateDict, prefix: str, rows_per_class: int, background: bool,
           num_classes: int, what: str) -> _Layer:
    weight = state_dict[prefix + ".weight"]
    bias = state_dict.get(prefix + ".bias")
    rows = weight.shape[0]
    agnostic = not background and rows != rows_per_class * num_classes
    if agnostic and rows != rows_per_class:
        raise SurgeryError(
            f"{what}: {prefix}.weight has {rows} rows but the classifier has {num_classes} "
            f"classes (+ background): expected {rows_per_class}*{num_classes}="
            f"{rows_per_class * num_classes} (class-specific) or {rows_per_class} (class-agnostic)")
    if bias is not None and tuple(bias.shape) != (rows,):
        raise SurgeryError(f"{what}: {prefix}.bias has shape {tuple(bias.shape)}, its weight "
                           f"{tuple(weight.shape)}: expected ({rows},)")
    return _Layer(prefix, rows_per_class, background, agnostic, weight, bias)


def _predictor(state_dict: StateDict, keys: PredictorKeys, what: str) -> Tuple[int, List[_Layer]]:
    """The class count of ``state_dict``'s predictor and its class-dependent layers."""
    cls_prefix, bbox_prefix = _locate(state_dict, keys.cls_score), _locate(state_dict,
                                                                           keys.bbox_pred)
    if cls_prefix is None or bbox_prefix is None:
        raise _missing_predictor(state_dict, keys, what)
    num_classes = state_dict[cls_prefix + ".weight"].shape[0] - 1
    if num_classes < 1:
        raise SurgeryError(f"{what}: {cls_prefix}.weight has {num_classes + 1} row(s); a "
                           "classifier has one row per class plus the background row")
    layers = [_layer(state_dict, cls_prefix, 1, True, num_classes, what),
              _layer(state_dict, bbox_prefix, BOX_DIM, False, num_classes, what)]
    mask_prefix = _locate(state_dict, keys.mask_pred)
    if mask_prefix is not None:
        layers.append(_layer(state_dict, mask_prefix, 1, False, num_classes, what))
    return num_classes, layers


def predictor_num_classes(state_dict: StateDict, keys: PredictorKeys = PredictorKeys(),
                          what: str = "the checkpoint") -> int:
    """The number of classes (without background) of ``state_dict``'s box predictor."""
    return _predictor(state_dict, keys, what)[0]


# ---------------------------------------------------------------------------------------------
# Class lists


def _index(classes: ClassList, what: str) -> Dict[str, int]:
    """Row of each named class; raises on duplicates."""
    named = [c for c in classes if c is not None]
    duplicates = sorted({c for c in named if named.count(c) > 1})
    if duplicates:
        raise SurgeryError(f"the {what} classes name {', '.join(map(repr, duplicates))} more "
                           "than once")
    return {c: i for i, c in enumerate(classes) if c is not None}


def _check_count(num_classes: int, layers: List[_Layer], classes: ClassList, what: str) -> None:
    if num_classes != len(classes):
        cls = layers[0]
        raise SurgeryError(
            f"{what} has {num_classes + 1} rows in {cls.prefix}.weight ({num_classes} classes + "
            f"background) but {len(classes)} classes were given for it ({_preview(classes)}): "
            f"expected {len(classes) + 1} rows")


def _preview(classes: ClassList, limit: int = 4) -> str:
    shown = ", ".join(repr(c) for c in list(classes)[:limit])
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > limit else "")


def resolve_class_lists(num_src_classes: int, *, source: Optional[ClassList] = None,
                        target: Optional[Sequence[str]] = None,
                        novel: Optional[Sequence[str]] = None,
                        tar_num_classes: Optional[int] = None) -> ClassLists:
    """Complete the class lists the way fsdet does without ``--coco``/``--lvis``.

    Without ``target``, the target is ``tar_num_classes`` (default 20, VOC) classes named
    ``class_<i>``. Without ``source``, the source's ``num_src_classes`` classes are the first of the
    target (VOC's "base classes first"). Without ``novel``, a novel-only checkpoint holds the
    target's classes the source lacks, in target order.
    """
    if target is None:
        if source is not None:
            raise SurgeryError("source classes were given without target classes: give the "
                               "target's too (--tar-classes or --tar-dataset)")
        target = [f"class_{i}" for i in range(tar_num_classes or VOC_NUM_CLASSES)]
    elif tar_num_classes is not None and tar_num_classes != len(target):
        raise SurgeryError(f"--tar-num-classes {tar_num_classes} disagrees with the "
                           f"{len(target)} target classes given ({_preview(target)})")
    if source is None:
        if num_src_classes > len(target):
            raise SurgeryError(
                f"the source checkpoint has {num_src_classes} classes, more than the target's "
                f"{len(target)}: they cannot be the target's first classes (base first); give "
                "the source classes (--src-classes or --src-dataset)")
        source = list(target[:num_src_classes])
    known = set(source)
    if novel is None:
        novel = [c for c in target if c not in known]
    return ClassLists(list(source), list(target), list(novel))


def fsdet_class_lists(dataset: str, num_src_classes: int) -> ClassLists:
    """fsdet's ``--coco`` / ``--lvis`` class lists, by name, in dataset id order.

    COCO: novel = the 20 VOC classes (:data:`COCO_NOVEL_IDS`), the source has the other 60.
    LVIS v0.5: novel = the rare classes (frequency "r", 454); the source has either all 1230 rows
    (fsdet's base model: only base rows trained, the novel ones are not copied) or the 776 base.
    """
    if dataset == "coco":
        from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
        things = sorted((c for c in COCO_CATEGORIES if c["isthing"]), key=lambda c: c["id"])
        is_novel = [c["id"] in COCO_NOVEL_IDS for c in things]
    elif dataset == "lvis":
        from detectron2.data.datasets.lvis_v0_5_categories import LVIS_CATEGORIES
        things = sorted(LVIS_CATEGORIES, key=lambda c: c["id"])
        is_novel = [c["frequency"] == "r" for c in things]
    else:
        raise SurgeryError(f"unknown fsdet dataset {dataset!r}: expected 'coco' or 'lvis'")
    target = [c["name"] for c in things]
    base = [name for name, new in zip(target, is_novel) if not new]
    novel = [name for name, new in zip(target, is_novel) if new]
    if dataset == "lvis" and num_src_classes == len(target):
        source = [None if new else name for name, new in zip(target, is_novel)]
    else:
        source = base
    return ClassLists(source, target, novel)


def dataset_classes(name: str) -> List[str]:
    """``thing_classes`` of the registered Detectron2 dataset ``name``."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    registered = DatasetCatalog.list()
    if name not in registered:
        close = difflib.get_close_matches(name, registered, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SurgeryError(f"dataset {name!r} is not registered{hint}")
    classes = MetadataCatalog.get(name).get("thing_classes", None)
    if not classes:
        raise SurgeryError(f"dataset {name!r} has no thing_classes in its metadata")
    return list(classes)


# ---------------------------------------------------------------------------------------------
# Surgery on state dicts


def _assemble(sources: Sequence[Tuple[torch.Tensor, Dict[str, int]]], target: Sequence[str],
              rows_per_class: int, background: bool,
              new_rows: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Target rows: each class's rows from the first source that has it, else ``new_rows(like)``;
    then the first source's background row."""
    first = sources[0][0]
    pieces = []
    for name in target:
        for tensor, index in sources:
            if name in index:
                i = index[name] * rows_per_class
                pieces.append(tensor[i:i + rows_per_class])
                break
        else:
            pieces.append(new_rows(first[:rows_per_class]))
    if background:
        pieces.append(first[-1:])
    return torch.cat(pieces)


def _normal_rows(std: float, generator: Optional[torch.Generator]):
    def new_rows(like: torch.Tensor) -> torch.Tensor:
        rows = torch.empty(like.shape, dtype=torch.float32)  # drawn on the CPU: the generator's
        return rows.normal_(0.0, std, generator=generator).to(like)
    return new_rows


def _copy(state_dict: StateDict, new: Optional[Mapping[str, torch.Tensor]] = None,
          dropped: frozenset = frozenset()) -> "OrderedDict":
    """A copy of ``state_dict`` (key order and PyTorch's ``_metadata`` kept) with the values of
    ``new``'s keys replaced and the ``dropped`` keys left out."""
    new = new or {}
    out = OrderedDict((k, new.get(k, v)) for k, v in state_dict.items() if k not in dropped)
    if hasattr(state_dict, "_metadata"):  # module versions, read by load_state_dict
        out._metadata = state_dict._metadata
    return out


def _rebuild(layers: Sequence[Sequence[_Layer]], indexes: Sequence[Dict[str, int]],
             target: Sequence[str], std: float,
             generator: Optional[torch.Generator]) -> Dict[str, torch.Tensor]:
    """New tensors of the first source's layers; ``layers[i][s]`` = layer i of source s."""
    out = {}
    for same_layer in layers:
        first = same_layer[0]
        if first.agnostic:  # shared by all classes: kept
            continue
        out[first.prefix + ".weight"] = _assemble(
            [(layer.weight, index) for layer, index in zip(same_layer, indexes)], target,
            first.rows_per_class, first.background, _normal_rows(std, generator))
        if first.bias is not None:
            out[first.prefix + ".bias"] = _assemble(
                [(layer.bias, index) for layer, index in zip(same_layer, indexes)], target,
                first.rows_per_class, first.background, torch.zeros_like)
    return out


def randinit(state_dict: StateDict, src_classes: ClassList, tar_classes: Sequence[str], *,
             generator: Optional[torch.Generator] = None, std: float = INIT_STD,
             keys: PredictorKeys = PredictorKeys()) -> "OrderedDict":
    """``state_dict`` with a predictor for ``tar_classes``: rows of the classes in
    ``src_classes`` (the source rows' names) copied, the others N(0, ``std``) weights, zero bias;
    background row copied."""
    num_classes, layers = _predictor(state_dict, keys, "the source checkpoint")
    _check_count(num_classes, layers, src_classes, "the source checkpoint")
    index = _index(src_classes, "source")
    _index(tar_classes, "target")
    if not set(index) & set(tar_classes):
        raise SurgeryError(f"no target class ({_preview(tar_classes)}) is a class of the source "
                           f"({_preview(src_classes)}): are the class lists right?")
    new = _rebuild([[layer] for layer in layers], [index], tar_classes, std, generator)
    return _copy(state_dict, new)


def remove(state_dict: StateDict, keys: PredictorKeys = PredictorKeys()) -> "OrderedDict":
    """``state_dict`` without the class-dependent predictor parameters (weights and biases)."""
    _, layers = _predictor(state_dict, keys, "the source checkpoint")
    return _copy(state_dict, dropped=frozenset(key for layer in layers for key in layer.keys()))


def _check_same_layers(base: List[_Layer], novel: List[_Layer]) -> None:
    if [layer.name for layer in base] != [layer.name for layer in novel]:
        raise SurgeryError(f"the base checkpoint's predictor has {[lay.name for lay in base]}, "
                           f"the novel checkpoint's {[lay.name for lay in novel]}")
    for b, n in zip(base, novel):
        if b.weight.shape[1:] != n.weight.shape[1:]:
            raise SurgeryError(
                f"feature sizes differ: {b.name}.weight is {tuple(b.weight.shape)} in the base "
                f"checkpoint but {tuple(n.weight.shape)} in the novel checkpoint")
        if (b.bias is None) != (n.bias is None):
            has = "base" if n.bias is None else "novel"
            raise SurgeryError(f"only the {has} checkpoint has {b.name}.bias: the two predictors "
                               "are of different kinds (e.g. cosine vs. linear classifier)")
        if b.agnostic != n.agnostic:
            raise SurgeryError(f"{b.name} is class-agnostic in one checkpoint only (base: "
                               f"{tuple(b.weight.shape)}, novel: {tuple(n.weight.shape)})")


def combine(base_state_dict: StateDict, novel_state_dict: StateDict, base_classes: ClassList,
            novel_classes: Sequence[str], tar_classes: Sequence[str], *,
            keys: PredictorKeys = PredictorKeys()) -> "OrderedDict":
    """``base_state_dict`` with a predictor for ``tar_classes``: the rows of ``base_classes`` and
    the background from it, the rows of ``novel_classes`` (which must be exactly the target's
    classes missing from the base) from ``novel_state_dict``. Class-agnostic layers: the base's."""
    base_count, base_layers = _predictor(base_state_dict, keys, "the base checkpoint (src1)")
    novel_count, novel_layers = _predictor(novel_state_dict, keys, "the novel checkpoint (src2)")
    _check_count(base_count, base_layers, base_classes, "the base checkpoint (src1)")
    _check_count(novel_count, novel_layers, novel_classes, "the novel checkpoint (src2)")
    base_index, novel_index = _index(base_classes, "base"), _index(novel_classes, "novel")
    _index(tar_classes, "target")
    unknown = [c for c in tar_classes if c not in base_index and c not in novel_index]
    if unknown:
        raise SurgeryError(f"target classes {_preview(unknown)} are in neither the base nor the "
                           "novel checkpoint's classes")
    expected = [c for c in tar_classes if c not in base_index]
    if set(novel_classes) != set(expected):
        raise SurgeryError(
            f"the novel checkpoint's classes ({_preview(novel_classes)}) are not the target's "
            f"classes missing from the base checkpoint ({_preview(expected)})")
    _check_same_layers(base_layers, novel_layers)
    new = _rebuild(list(zip(base_layers, novel_layers)), [base_index, novel_index], tar_classes,
                   INIT_STD, None)  # every row is copied: nothing is drawn
    return _copy(base_state_dict, new)


# ---------------------------------------------------------------------------------------------
# Whole checkpoints


def reset_training_state(checkpoint: Mapping) -> dict:
    """A copy of ``checkpoint`` without optimizer, scheduler and trainer state, at iteration 0."""
    out = {k: v for k, v in checkpoint.items() if k not in TRAINING_STATE_KEYS}
    out["iteration"] = 0
    return out


def checkpoint_surgery(method: str, checkpoint: Mapping, classes: Optional[ClassLists] = None, *,
                       novel_checkpoint: Optional[Mapping] = None,
                       generator: Optional[torch.Generator] = None, std: float = INIT_STD,
                       keys: PredictorKeys = PredictorKeys()) -> dict:
    """``method`` (:data:`METHODS`) applied to a Detectron2 checkpoint ``{"model": ...}``; the
    result has no training state (:func:`reset_training_state`). ``classes`` is needed except for
    ``remove``, ``novel_checkpoint`` for ``combine`` only."""
    if method not in METHODS:
        raise SurgeryError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    if method != "remove" and classes is None:
        raise SurgeryError(f"method {method!r} needs the class lists")
    if (method == "combine") != (novel_checkpoint is not None):
        raise SurgeryError("a second (novel) checkpoint is needed by, and only by, 'combine'")
    model = checkpoint["model"]
    if method == "remove":
        model = remove(model, keys)
    elif method == "randinit":
        model = randinit(model, classes.source, classes.target, generator=generator, std=std,
                         keys=keys)
    else:
        model = combine(model, novel_checkpoint["model"], classes.source, classes.novel,
                        classes.target, keys=keys)
    return dict(reset_training_state(checkpoint), model=model)


def load_checkpoint(path: Union[str, Path], what: str = "checkpoint") -> dict:
    """:func:`~dynnet_d2.engine.checkpoint.read_checkpoint_file` raising :class:`SurgeryError`."""
    return read_checkpoint_file(path, what, SurgeryError)


def output_path(method: str, src1: Union[str, Path], save_dir: Union[str, Path, None] = None,
                tar_name: str = "model_reset") -> Path:
    """fsdet's output name: ``<save_dir or dir of src1>/<tar_name>_<suffix>.pth``, suffix
    ``surgery`` (randinit), ``remove`` or ``combine``."""
    directory = Path(save_dir) if save_dir else Path(src1).parent
    return directory / f"{tar_name}_{OUTPUT_SUFFIX[method]}.pth"


def save_checkpoint(checkpoint: Mapping, path: Union[str, Path]) -> None:
    """Write ``checkpoint`` to ``path`` atomically (a reader never sees half a file)."""
    with atomic_open(path, "wb") as f:
        torch.save(dict(checkpoint), f)
