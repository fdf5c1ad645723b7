#!/usr/bin/env python
"""Generate the synthetic "shapes" dataset (COCO / VOC / LVIS / classification views).

    python tools/make_synthetic.py              # default size into $DYNNET_DATASETS (or ./datasets)
    python tools/make_synthetic.py --root /tmp/data --num-train 200 --force

Without --force an existing complete dataset with the same spec is kept as is.
"""
import argparse
import dataclasses
import sys
import time
from pathlib import Path

from dynnet_d2.data.synthetic import SyntheticSpec, default_root, ensure_synthetic, read_manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--root", default=None,
                   help="dataset root (default: $DYNNET_DATASETS or ./datasets); "
                        "the data goes to ROOT/shapes")
    p.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    for f in ("num_train", "num_val", "num_test", "num_lvis_train", "min_objects", "max_objects"):
        p.add_argument("--" + f.replace("_", "-"), type=int, default=getattr(SyntheticSpec, f))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--force", action="store_true", help="regenerate even if already complete")
    args = p.parse_args(argv)
    for f in ("num_train", "num_val", "num_test", "num_lvis_train"):
        if getattr(args, f) < 0:
            p.error(f"--{f.replace('_', '-')} must be >= 0")
    if not 1 <= args.min_objects <= args.max_objects:
        p.error("need 1 <= --min-objects <= --max-objects")

    spec = SyntheticSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticSpec)
                            if hasattr(args, f.name)})
    root = Path(args.root) if args.root else default_root()
    t0 = time.perf_counter()
    before = read_manifest(root)
    out = ensure_synthetic(root, spec, workers=args.workers, force=args.force)
    action = "already complete, kept" if read_manifest(root) == before else "generated"
    dt = time.perf_counter() - t0
    m = read_manifest(root) or {}
    print(f"{out.resolve()}: {action} in {dt:.1f} s")
    for split, c in m.get("counts", {}).items():
        extra = f", LVIS frequencies {c['frequency']}" if "frequency" in c else ""
        print(f"  {split:11s} {c['images']:5d} images {c['instances']:6d} instances{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
