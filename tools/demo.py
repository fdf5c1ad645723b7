#!/usr/bin/env python
"""``make demo``: TFA (thesis ch. 7) on the synthetic shapes, end to end and short.

1. base training of the ImageNet-initialised MobileNetV2 detector on the 15 base classes of
   few-shot split 1 (reused when already trained);
2. checkpoint surgery (``randinit``): a predictor for all 20 classes;
3. TFA w/ cos fine-tuning of the last layer on the 1-shot and 5-shot sets of seed 0;
4. the generalized table (AP on all classes, bAP on base, nAP on novel), base-only (the surgery
   checkpoint with the FC head the base model was trained with) included;
5. drawings of the novel-class detections of the 5-shot model.

    python tools/demo.py [--output-dir output/demo] [--base-iters 1500] [--shots 1 5]

The full schedules are the configs in configs/TFA (see projects/TFA/README.md).
"""
import argparse
import os
import sys
import time
from pathlib import Path

from dynnet_d2.config import load_config
from dynnet_d2.data.builtin import ensure_shapes
from dynnet_d2.engine import DynnetTrainer, train_or_reuse
from dynnet_d2.engine.checkpoint import load_strictly
from dynnet_d2.engine.visualize import visualize_predictions
from dynnet_d2.evaluation.fewshot import check_results_defined, generalized_table
from dynnet_d2.methods.tfa.pipeline import randinit_surgery
from dynnet_d2.utils.logger import setup_logger

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "TFA"
BASE = CONFIGS / "faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"
FINE_TUNE = CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml"
# Base-only is evaluated with the head the base model was trained with (FC, with its bias).
BASE_ONLY = CONFIGS / "faster_rcnn_MobileNetV2_FPN_ft_fc_all_100itxK_shapes.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("--base-iters", type=int, default=1500, help="base training iterations")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--split", type=int, default=1, help="few-shot split (1, 2, 3)")
    parser.add_argument("--seed", type=int, default=0, help="which sampled K-shot set")
    args = parser.parse_args()
    out = Path(args.output_dir)

    start = time.perf_counter()
    print(f"[demo] synthetic data: {ensure_shapes()}  ({time.perf_counter() - start:.1f} s)")
    setup_logger(str(out))
    fewshot = ["FEWSHOT.SPLIT", args.split, "FEWSHOT.SEED", args.seed]
    base_cfg = load_config(str(BASE), fewshot + [
        "OUTPUT_DIR", str(out / f"base_split{args.split}"), "SOLVER.MAX_ITER", args.base_iters,
        "SOLVER.STEPS", (int(args.base_iters * 0.8),), "SOLVER.CHECKPOINT_PERIOD", args.base_iters])
    results = {"base training (base classes)": train_or_reuse(base_cfg)}
    print(f"[demo] base training done ({time.perf_counter() - start:.0f} s)")

    surgery = randinit_surgery(os.path.join(base_cfg.OUTPUT_DIR, "model_final.pth"),
                               f"shapes_train_base{args.split}", f"shapes_train_all{args.split}")
    base_only = load_config(str(BASE_ONLY), fewshot + [
        "FEWSHOT.SHOT", 1, "MODEL.WEIGHTS", str(surgery), "OUTPUT_DIR", str(out / "base_only")])
    results["base only (surgery, no fine-tuning)"] = DynnetTrainer.evaluate_checkpoint(base_only)

    for shot in args.shots:
        cfg = load_config(str(FINE_TUNE), fewshot + [
            "FEWSHOT.SHOT", shot, "MODEL.WEIGHTS", str(surgery),
            "OUTPUT_DIR", str(out / f"tfa_cos_{shot}shot_seed{args.seed}")])
        results[f"TFA w/ cos, {shot}-shot"] = train_or_reuse(cfg)
        print(f"[demo] {shot}-shot fine-tuning done ({time.perf_counter() - start:.0f} s)")

    model = DynnetTrainer.build_model(cfg)
    load_strictly(model, cfg, os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    test_set = cfg.DATASETS.TEST[0]
    from detectron2.data import MetadataCatalog  # after dynnet_d2 (datasets root, warnings)

    for name, run_results in results.items():
        check_results_defined(run_results, f"[demo] {name}")
    drawings = visualize_predictions(cfg, model, test_set, str(out / "visualizations"), 6,
                                     class_names=MetadataCatalog.get(test_set).novel_classes)
    print(f"\n[demo] generalized few-shot detection on {test_set} "
          f"(bAP: base classes, nAP: novel classes):\n{generalized_table(results)}\n")
    print(f"[demo] novel-class detections of the {args.shots[-1]}-shot model: "
          f"{os.path.dirname(drawings[0]) if drawings else 'none'}")
    print(f"[demo] done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
