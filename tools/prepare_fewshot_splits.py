#!/usr/bin/env python
"""Write K-shot split files (TFA's formats) for a registered dataset: exactly K instances per
class, nested across K, byte-identical for the same inputs (dynnet_d2/data/fewshot/).

    python tools/prepare_fewshot_splits.py --dataset shapes_train --shots 1 2 3 5 10 --seeds 0-29
    python tools/prepare_fewshot_splits.py --dataset my_train --config-file my.yaml \\
        --novel-classes cat dog --format coco --out datasets/cocosplit

Datasets declared in a config (DATASETS.COCO_JSON_DATASETS / VOC_DATASETS) are registered from
``--config-file``. Default shots: 1 2 3 5 10 (VOC style), plus 30 for COCO-style files.
"""
import argparse
import sys
from typing import List

from dynnet_d2.config import load_config
from dynnet_d2.data import register_datasets_from_config
from dynnet_d2.data.fewshot import COCO_SHOTS, VOC_SHOTS
from dynnet_d2.data.fewshot.prepare import default_format, prepare_splits


def parse_seeds(text: List[str]) -> List[int]:
    """``["0-29"]`` -> 0..29; ``["0", "3", "5-6"]`` -> [0, 3, 5, 6]."""
    seeds = []
    for part in text:
        first, _, last = part.partition("-")
        seeds += list(range(int(first), int(last or first) + 1))
    return seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="a registered dataset (the pool)")
    parser.add_argument("--novel-classes", nargs="*", default=[],
                        help="checked against the dataset's classes")
    parser.add_argument("--shots", nargs="+", type=int, default=None)
    parser.add_argument("--seeds", nargs="+", default=["0-9"], help="e.g. 0-29, or 0 3 7")
    parser.add_argument("--format", choices=("voc", "coco"), default=None,
                        help="default: coco for COCO/LVIS JSON datasets, else voc")
    parser.add_argument("--out", default=None,
                        help="default: $DYNNET_DATASETS/fewshot/<dataset>/<format>split")
    parser.add_argument("--config-file", default=None,
                        help="registers the datasets this config declares")
    args = parser.parse_args()
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError:
        parser.error(f"--seeds {args.seeds}: expected integers or ranges like 0-29")
    from detectron2.data import DatasetCatalog  # after dynnet_d2 (datasets root, warnings)

    try:
        if args.config_file:
            register_datasets_from_config(load_config(args.config_file))
        if args.dataset not in DatasetCatalog.list():
            parser.error(f"--dataset {args.dataset!r} is not registered (declare it in the config "
                         f"given with --config-file, or use a built-in name such as shapes_train)")
        fmt = args.format or default_format(args.dataset)
        shots = args.shots or list(COCO_SHOTS if fmt == "coco" else VOC_SHOTS)
        root = prepare_splits(args.dataset, shots, seeds, fmt, args.out, args.novel_classes)
    except (ValueError, FileNotFoundError) as e:
        print(f"prepare_fewshot_splits: error: {e}", file=sys.stderr)
        return 2
    print(f"{fmt}-style split files for seeds {seeds[0]}..{seeds[-1]}, shots {shots}: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
