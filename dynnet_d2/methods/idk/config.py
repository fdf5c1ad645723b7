"""The config keys of IDK prediction cascades, under ``CASCADE`` (the node name the tools and
configs have used since the method landed: ``tools/run_cascade.py``, ``configs/IDK/``), registered
into :func:`dynnet_d2.config.add_dynnet_config`."""
from detectron2.config import CfgNode as CN

from ...config import register_method_config


@register_method_config
def add_idk_config(cfg: CN) -> None:
    # IDK prediction cascades (thesis ch. 4; dynnet_d2/methods/idk/, tools/run_cascade.py):
    # trained classifiers in order of cost; after each but the last an IDK classifier decides
    # per input whether the next stage is asked.
    cfg.CASCADE = CN()
    # The stages, cheapest first: a Detectron2 config (.yaml) of a trained classifier, or a
    # TorchScript file (.pt/.ts) mapping float images (B, C, H, W) to logits (B, num_classes).
    cfg.CASCADE.STAGES = []
    # Weights of each stage, one per STAGES entry ("" for TorchScript files).
    cfg.CASCADE.WEIGHTS = []
    # Given cost of each stage, one per STAGES entry, in the unit of COST; < 0 = measure it.
    # Required for TorchScript stages when COST is "flops". Empty = measure every stage.
    cfg.CASCADE.STAGE_COSTS = []
    # Training datasets of each TorchScript stage ("name1,name2"; one per STAGES entry, "" for
    # config stages, whose DATASETS.TRAIN is read), for the calibration overlap check.
    cfg.CASCADE.STAGE_TRAIN_DATASETS = []
    # Stage cost: "flops" (fvcore's count, executed FLOPs per input for dynamic backbones) or
    # "latency" (seconds per input measured here at BATCH_SIZE).
    cfg.CASCADE.COST = "flops"
    # Held-out split the IDK classifiers are fitted on; must not overlap any stage's training
    # data (training-set confidence is overconfident, Fig. 4.5).
    cfg.CASCADE.CALIB_DATASET = "fashion_mnist_calib"
    # Split the fitted cascade is evaluated and timed on.
    cfg.CASCADE.TEST_DATASET = "fashion_mnist_test"
    # How the IDK classifiers are built (IDK_METHOD_REGISTRY): "prob_grid" (Eq. 4.3),
    # "entropy_grid" (Eq. 4.4), "entropy_cost" / "mlp_cost" (Eq. 4.5 trained on Eq. 4.12-4.16),
    # "entropy_oblivious" / "mlp_oblivious" (cross-entropy on the stage's correctness).
    cfg.CASCADE.METHOD = "entropy_cost"
    # Accuracy target of Eq. 4.11: (1 - EPSILON) x the accuracy of the most accurate stage on the
    # calibration split; in [0, 1).
    cfg.CASCADE.EPSILON = 0.0
    # Absolute accuracy target in (0, 1] instead of EPSILON (e.g. 0.95 with a human expert);
    # 0 = use EPSILON.
    cfg.CASCADE.TARGET_ACCURACY = 0.0
    # Candidate thresholds of the grid searches (quantiles of the uncertainty); >= 100.
    cfg.CASCADE.GRID_SIZE = 1000
    # Inputs per batch when serving (every later stage runs on full batches of passed-on inputs,
    # or on a partial one when MAX_WAIT_MS is due).
    cfg.CASCADE.BATCH_SIZE = 64
    # Serving deadline: a later stage runs on a partial batch once its oldest waiting input has
    # waited this many milliseconds; 0 = no deadline (wait for a full batch).
    cfg.CASCADE.MAX_WAIT_MS = 0.0
    # Fit and serve stages that are out of order on the calibration split (one not cheaper than
    # the next, or an earlier one more accurate than the last) with a warning instead of an error.
    cfg.CASCADE.ALLOW_UNORDERED = False
    # Learned IDK classifiers (Eq. 4.5).
    cfg.CASCADE.LEARNED = CN()
    # lambda of Eq. 4.12: weight of the cost, in units of the most accurate stage's cost.
    cfg.CASCADE.LEARNED.LAMBDA = 0.04
    # Cost-aware fitting: "joint" (Eq. 4.15-4.16, all IDK classifiers at once) or "stagewise"
    # (last pair first, each against the fitted rest of the cascade).
    cfg.CASCADE.LEARNED.FIT = "joint"
    # Cost-aware: search LAMBDA x 2^k, k in [-8, 4], by bisection (to 0.1) for the largest
    # lambda (the cheapest cascade) that meets the accuracy target on the calibration split
    # (False = LAMBDA only).
    cfg.CASCADE.LEARNED.MEET_TARGET = True
    # Full-batch Adam steps of every learned IDK classifier.
    cfg.CASCADE.LEARNED.ITERS = 500
    # Adam's learning rate for them.
    cfg.CASCADE.LEARNED.LR = 0.05
    # Hidden widths of the MLP IDK classifier on the probability vector.
    cfg.CASCADE.LEARNED.MLP_HIDDEN = [64, 64]
    # Seed of the learned classifiers' initialisation.
    cfg.CASCADE.LEARNED.SEED = 0
    # Optional last stage: a human expert, simulated from the labels (human-in-the-loop).
    cfg.CASCADE.HUMAN = CN()
    # Append the human expert after the last model stage.
    cfg.CASCADE.HUMAN.ENABLED = False
    # Its cost as a multiple of the most expensive model stage's mean cost.
    cfg.CASCADE.HUMAN.COST_FACTOR = 100.0
    # Probability that the expert answers correctly (a wrong answer is a uniformly drawn
    # other class), drawn per input from SEED and the image_id.
    cfg.CASCADE.HUMAN.ACCURACY = 1.0
    # Seed of the simulated expert's mistakes.
    cfg.CASCADE.HUMAN.SEED = 0
