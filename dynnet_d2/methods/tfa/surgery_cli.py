"""The checks and steps of ``tools/ckpt_surgery.py`` (fsdet's flags) over :mod:`.surgery`: the
class lists from the command line's datasets, lists or ``--coco`` / ``--lvis``, every argument
checked (a :class:`~.surgery.SurgeryError` naming the flag) before anything is written, then the
surgery and a summary of where each row came from.
"""
from pathlib import Path

import torch

from .surgery import (
    PredictorKeys,
    SurgeryError,
    checkpoint_surgery,
    dataset_classes,
    fsdet_class_lists,
    load_checkpoint,
    output_path,
    predictor_num_classes,
    resolve_class_lists,
    save_checkpoint,
)


def _classes(args, which: str):
    dataset, names = getattr(args, f"{which}_dataset"), getattr(args, f"{which}_classes")
    if dataset and names:
        raise SurgeryError(f"give --{which}-dataset or --{which}-classes, not both")
    return dataset_classes(dataset) if dataset else names


def _class_lists(args, num_src_classes: int):
    if args.coco or args.lvis:
        given = [f"--{which}-{kind}" for which in ("src", "src2", "tar")
                 for kind in ("dataset", "classes") if getattr(args, f"{which}_{kind}")]
        given += ["--tar-num-classes"] if args.tar_num_classes is not None else []
        if given:
            raise SurgeryError(f"--{'coco' if args.coco else 'lvis'} sets the class lists: "
                               f"leave out {' '.join(given)}")
        return fsdet_class_lists("coco" if args.coco else "lvis", num_src_classes)
    return resolve_class_lists(num_src_classes, source=_classes(args, "src"),
                               target=_classes(args, "tar"), novel=_classes(args, "src2"),
                               tar_num_classes=args.tar_num_classes)


def run(args) -> Path:
    """Check everything, then write the result; return its path."""
    if len(args.param_name) != 2:
        raise SurgeryError(f"--param-name takes the classifier and the box regressor, got "
                           f"{len(args.param_name)} name(s): {' '.join(args.param_name)}")
    if (args.method == "combine") != bool(args.src2):
        raise SurgeryError("--src2 is needed by, and only by, --method combine")
    keys = PredictorKeys(*args.param_name)
    out = output_path(args.method, args.src1, args.save_dir, args.tar_name)
    inputs = [Path(p) for p in (args.src1, args.src2) if p]
    if any(out.resolve() == p.resolve() for p in inputs):
        raise SurgeryError(f"the output {str(out)!r} would overwrite an input: change "
                           "--tar-name or --save-dir")
    for name, path in (("--src1", args.src1), ("--src2", args.src2)):
        if path and not Path(path).is_file():
            raise SurgeryError(f"{name} {path!r} does not exist (or is not a file)")
    checkpoint = load_checkpoint(args.src1, "--src1")
    novel = load_checkpoint(args.src2, "--src2") if args.src2 else None
    classes = None
    if args.method != "remove":
        num_src = predictor_num_classes(checkpoint["model"], keys, f"--src1 {args.src1!r}")
        classes = _class_lists(args, num_src)
        if not (args.coco or args.lvis or args.src_dataset or args.src_classes):
            print(f"No source classes given: src1's {num_src} classes are taken to be the "
                  "target's first (fsdet's base-first convention)")
    result = checkpoint_surgery(args.method, checkpoint, classes, novel_checkpoint=novel,
                                generator=torch.Generator().manual_seed(args.seed),
                                std=args.init_std, keys=keys)
    save_checkpoint(result, out)
    if classes is not None:
        known = set(classes.source)
        copied = sum(c in known for c in classes.target)
        origin = ("src2" if args.method == "combine"
                  else f"N(0, {args.init_std}) weights, zero bias, seed {args.seed}")
        print(f"{args.method}: {len(classes.target)} target classes: {copied} rows + background "
              f"from src1, {len(classes.target) - copied} from {origin}")
    print(f"Saved the {args.method} checkpoint to {out}")
    return out
