#!/usr/bin/env python
"""Benchmark: start-up cost of training on a large user COCO JSON (writes a JSON).

Generates (once, under ``--data``) a COCO JSON of ``--images`` small images with
``--per-image`` objects each (default 12,000 x 5 = 60,000 annotations, each with a box and a
``--polygon-points`` polygon, about COCO's bytes per annotation) and their image files, then
times ``tools/train_net.py`` on it for one iteration (no evaluation), ``--repeats`` times per tree
in alternation: wall time and peak RSS of the whole run, which start-up dominates. Each ``--tree``
is a checkout of dynnet_d2 to compare (e.g. this one and a ``git worktree`` of an older commit);
``--config`` is given per tree because config names change between versions. The logic:
``dynnet_d2/engine/startup_benchmark.py``.

    git worktree add /tmp/dynnet_before <commit>
    python tools/benchmark_startup.py --output benchmarks/startup_60k_annotations_2cpu.json \
        --tree before=/tmp/dynnet_before:configs/Base-RCNN-Tiny.yaml \
        --tree after=.:configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml

Resumable: a (tree, opts, repeat) run already recorded is skipped (``--rerun`` runs it again).
"""
import argparse
import sys
from pathlib import Path

from dynnet_d2.engine.startup_benchmark import parse_tree, run_startup_benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True,
                        help="NAME=CHECKOUT:CONFIG (repeatable)")
    parser.add_argument("--images", type=int, default=12000)
    parser.add_argument("--per-image", type=int, default=5)
    parser.add_argument("--polygon-points", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="output/benchmarks/startup_data")
    parser.add_argument("--output", default="output/benchmarks/startup.json")
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="extra overrides KEY VALUE ... for every run (last argument)")
    args = parser.parse_args()
    trees = {}
    for spec in args.tree:
        try:
            name, checkout, config = parse_tree(spec)
        except ValueError as e:
            parser.error(str(e))
        trees[name] = (checkout, config)
    return run_startup_benchmark(
        trees, output=args.output, data=Path(args.data).resolve(), images=args.images,
        per_image=args.per_image, polygon_points=args.polygon_points, repeats=args.repeats,
        rerun=args.rerun, opts=args.opts)


if __name__ == "__main__":
    sys.exit(main())
