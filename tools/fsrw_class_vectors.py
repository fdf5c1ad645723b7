#!/usr/bin/env python
"""FSRW: recompute a trained reweighting detector's class vectors from the support instances of
other registered datasets, into a new checkpoint (the logic: dynnet_d2/methods/fsrw/pipeline.py).

    python tools/fsrw_class_vectors.py \
        --config-file configs/FSRW/meta_rcnn_MobileNetV2_FPN_ft_all_100itxK_shapes.yaml \
        --supports shapes_train_all1_10shot_seed0 --output output/fsrw_10shot_vectors.pth \
        FEWSHOT.SPLIT 1 FEWSHOT.SHOT 1 MODEL.WEIGHTS path/to/model_final.pth

Then evaluate it: tools/train_net.py --eval-only ... MODEL.WEIGHTS output/fsrw_10shot_vectors.pth.
Exit code 2 on a bad argument (unknown dataset, another detector, another class count).
"""
import argparse
import sys

from dynnet_d2.config import load_config
from dynnet_d2.methods.fsrw.pipeline import recompute_class_vectors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--supports", nargs="+", required=True,
                        help="registered datasets whose instances are the supports")
    parser.add_argument("--output", required=True, help="the checkpoint to write")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides")
    args = parser.parse_args()
    try:
        cfg = load_config(args.config_file, args.opts)
        vectors = recompute_class_vectors(cfg, args.supports, args.output)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"fsrw_class_vectors: {e}", file=sys.stderr)
        return 2
    print(f"fsrw_class_vectors: {tuple(vectors.shape)} class vectors from {args.supports} "
          f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
