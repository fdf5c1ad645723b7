#!/usr/bin/env python
"""TFA checkpoint surgery (fsdet's tools/ckpt_surgery.py, same flags); the logic is in
``dynnet_d2/methods/tfa/surgery.py``, the checks of these flags in
``dynnet_d2/methods/tfa/surgery_cli.py``.

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

from dynnet_d2.methods.tfa.surgery import INIT_STD, METHODS, PredictorKeys, SurgeryError
from dynnet_d2.methods.tfa.surgery_cli import run


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
