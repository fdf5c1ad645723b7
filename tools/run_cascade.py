#!/usr/bin/env python
"""Fit an IDK prediction cascade (thesis ch. 4) on a calibration split and serve a test split.

    python tools/run_cascade.py --config-file configs/IDK/idk_R8-R38cifar_3000it_fashionmnist.yaml
    python tools/run_cascade.py --config-file CFG --cascade-file OUT/cascade.json  # no refit
    python tools/run_cascade.py --config-file CFG CASCADE.METHOD entropy_grid CASCADE.EPSILON 0.005
    python tools/run_cascade.py --config-file CFG CASCADE.MAX_WAIT_MS 20  # serving deadline

The config's ``CASCADE`` node lists the stages (trained configs + weights, or TorchScript files
with their cost), cheapest first and most accurate last (else an error on the calibration split,
unless ``CASCADE.ALLOW_UNORDERED True``). Writes ``OUTPUT_DIR/cascade.json`` (the fitted cascade)
and ``OUTPUT_DIR/inference/results.json`` (``{"cascade": {accuracy, idk_rate, mean_cost,
relative_cost, inputs_per_s, latency_ms, speedup, max_wait_ms, order_problems, ...}}``).
"""
import argparse
import json

from detectron2.utils.logger import setup_logger

import dynnet_d2  # noqa: F401  (registers datasets and components)
from dynnet_d2.config import load_config
from dynnet_d2.methods.idk.build import run_cascade


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, help="config with a CASCADE node")
    parser.add_argument("--cascade-file", default="",
                        help="a saved cascade.json to serve instead of fitting a new one")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    setup_logger(name="dynnet_d2")
    cfg = load_config(args.config_file, args.opts)
    result = run_cascade(cfg, args.cascade_file or None)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
