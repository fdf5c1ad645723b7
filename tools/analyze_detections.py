#!/usr/bin/env python
"""Split a detector's error into localization and classification (writes a JSON); see
``dynnet_d2/evaluation/detection_errors.py``.

    python tools/analyze_detections.py datasets/shapes/annotations/instances_test.json \
        OUTPUT_DIR/inference/shapes_test/coco_instances_results.json --output analysis.json
"""
import argparse
import contextlib
import io
import json
import sys

from pycocotools.coco import COCO

from dynnet_d2.evaluation.detection_errors import detection_error_report
from dynnet_d2.utils.io import atomic_write_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gt_json", help="COCO ground truth")
    parser.add_argument("results_json", help="Detectron2's coco_instances_results.json")
    parser.add_argument("--output", default=None,
                        help="where to write the JSON (default: print only)")
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(args.gt_json)
        dt = gt.loadRes(args.results_json)
    report = detection_error_report(gt, dt)
    if args.output:
        atomic_write_json(args.output, report, indent=2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
