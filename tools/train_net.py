#!/usr/bin/env python
"""Train or evaluate a dynnet_d2 model (Detectron2's train_net, with dynnet_d2's trainer).

    python tools/train_net.py --config-file configs/Base-RCNN-Tiny.yaml [--eval-only] [--resume]
        [--num-gpus N] [KEY VALUE ...]

``--num-gpus N`` on a machine without a GPU runs N CPU processes (gloo). Evaluation writes
``OUTPUT_DIR/inference/results.json``.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402

from dynnet_d2 import get_dynnet_cfg  # noqa: E402
from dynnet_d2.data.coco_format import register_from_config  # noqa: E402
from dynnet_d2.engine import AtomicDetectionCheckpointer, DynnetTrainer  # noqa: E402
from dynnet_d2.utils.io import ensure_writable_dir  # noqa: E402


def setup(args):
    """Config from file and command line, output dir checked, user datasets registered."""
    if not os.path.isfile(args.config_file):
        raise FileNotFoundError(f"--config-file {args.config_file!r} does not exist")
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    ensure_writable_dir(cfg.OUTPUT_DIR)
    default_setup(cfg, args)
    register_from_config(cfg.DATASETS.COCO_JSON_DATASETS)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = DynnetTrainer.build_model(cfg)
        AtomicDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        return DynnetTrainer.test(cfg, model)
    trainer = DynnetTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
