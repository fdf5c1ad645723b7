#!/usr/bin/env python
"""Train or evaluate a dynnet_d2 model (Detectron2's train_net, with dynnet_d2's trainer).

    python tools/train_net.py --config-file configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml \
        [--eval-only] [--resume] [--num-gpus N] [KEY VALUE ...]

The device follows the machine (``MODEL.DEVICE`` defaults to cuda when a GPU is visible).
``--num-gpus N`` trains N processes: one per GPU, or N gloo CPU processes with
``MODEL.DEVICE cpu`` or on a machine without a GPU. Evaluation writes
``OUTPUT_DIR/inference/results.json``. A config that trains only the box predictor (TFA's
fine-tuning) runs from feature caches (``FEWSHOT.CACHE``; ``FEWSHOT.CACHE.ENABLED False``: the
full model).
"""
import logging

from dynnet_d2.config import describe_schedule, load_config, schedule_per_shot
from dynnet_d2.data import register_datasets_from_config
from dynnet_d2.data.build import check_dataset_names
from dynnet_d2.engine import (
    DynnetTrainer,
    build_trainer,
    default_argument_parser,
    default_setup,
    launch,
)


def setup(args):
    """Config from file and command line, its dataset names checked (one line, before the set-up
    log); logging and output directory set up."""
    cfg = load_config(args.config_file, args.opts)
    cfg.freeze()
    register_datasets_from_config(cfg)
    check_dataset_names(cfg)
    default_setup(cfg, args)
    logging.getLogger("dynnet_d2").info(
        "Schedule: " + describe_schedule(cfg, schedule_per_shot(args.config_file, args.opts)))
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        return DynnetTrainer.evaluate_checkpoint(cfg, resume=args.resume)
    trainer = build_trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        device=load_config(args.config_file, args.opts).MODEL.DEVICE,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
