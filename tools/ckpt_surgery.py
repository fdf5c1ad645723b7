#!/usr/bin/env python
"""TFA checkpoint surgery (fsdet's tools/ckpt_surgery.py, same flags); the logic is in
``dynnet_d2/modeling/tfa/surgery.py``.

    # base model -> predictor for base + novel classes (novel rows random), by class name:
    python tools/ckpt_surgery.py --method randinit --src1 output/base/model_final.pth \
        --src-dataset shapes_train_base1 --tar-dataset shapes_train_all1
    # base + novel-only fine-tuned model -> one predictor; remove: drop the predictor
    python tools/ckpt_surgery.py --method combine --src1 BASE.pth --src2 NOVEL.pth \
        --src-dataset shapes_train_base1 --tar-dataset shapes_train_all1
    python tools/ckpt_surgery.py --method remove --src1 BASE.pth

Classes: registered datasets (--src-dataset, --tar-dataset, --src2-dataset), explicit lists
(--src-classes, ...), fsdet's --coco / --lvis, or fsdet's VOC default: --tar-num-classes (20)
classes of which the source's are the first (base first). Writes
<save-dir or dir of src1>/<tar-name>_{surgery,remove,combine}.pth; exit code 2 on an error,
before anything is written.
"""
import argparse
import sys
from pathlib import Path

import torch

from dynnet_d2.modeling.tfa.surgery import (
    INIT_STD,
    METHODS,
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src1", required=True, help="the (base) checkpoint")
    parser.add_argument("--src2", default="",
                        help="the novel-only fine-tuned checkpoint (combine only)")
    parser.add_argument("--save-dir", default="", help="output directory (default: src1's)")
    parser.add_argument("--method", choices=METHODS, required=True,
                        help="randinit: add randomly initialised novel rows; remove: drop the "
                             "predictor; combine: base rows from src1, novel rows from src2")
    parser.add_argument("--param-name", nargs="+",
                        default=[PredictorKeys.cls_score, PredictorKeys.bbox_pred],
                        help="the classifier, then the box regressor (without .weight/.bias)")
    parser.add_argument("--tar-name", default="model_reset", help="output name prefix")
    fsdet = parser.add_mutually_exclusive_group()
    fsdet.add_argument("--coco", action="store_true",
                       help="COCO: 60 base classes -> 80, novel = the 20 VOC classes, id order")
    fsdet.add_argument("--lvis", action="store_true",
                       help="LVIS v0.5: base -> 1230 classes, novel = the rare ones, id order")
    for which, of in (("src", "src1"), ("src2", "src2 (default: the target's classes src1 "
                                               "lacks)"), ("tar", "the result")):
        parser.add_argument(f"--{which}-dataset", default=None,
                            help=f"registered dataset whose thing_classes are those of {of}")
        parser.add_argument(f"--{which}-classes", nargs="+", default=None,
                            help=f"the classes of {of}, in row order")
    parser.add_argument("--tar-num-classes", type=int, default=None,
                        help="without target classes: their number (default 20, VOC)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the novel rows (randinit)")
    parser.add_argument("--init-std", type=float, default=INIT_STD,
                        help="std of the novel weights (randinit)")
    return parser.parse_args(argv)


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


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except SurgeryError as e:
        print(f"ckpt_surgery.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
