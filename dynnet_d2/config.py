"""``add_dynnet_config``: the one place where dynnet_d2 adds config keys to Detectron2's defaults.

Each topic (and, as they land, each method) has its own ``_add_<topic>_config(cfg)`` with a
comment per key, as Detectron2's ``projects/PointRend`` does with ``add_pointrend_config``.
"""
import os
from typing import Sequence

import torch
from detectron2.config import CfgNode as CN


def default_device() -> str:
    """``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``: the default of ``MODEL.DEVICE``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _add_device_config(cfg: CN) -> None:
    # Detectron2's default is "cuda", which fails on a CPU machine; shipped configs leave the key
    # unset, so every config trains on the GPU when there is one. An explicit cpu/cuda wins.
    cfg.MODEL.DEVICE = default_device()


def _add_datasets_config(cfg: CN) -> None:
    # COCO-format datasets registered from the config, no code edits needed:
    # a list of [name, json_file, image_root]. The JSON is validated when registered.
    cfg.DATASETS.COCO_JSON_DATASETS = []
    # Pascal VOC folders registered from the config: a list of [name, folder, split, classes].
    # split: "" = every Annotations/*.xml, a name = ImageSets/Main/<name>.txt, or a .txt path;
    # classes: a list of names, or "" = the sorted names found in all of the folder's XMLs.
    cfg.DATASETS.VOC_DATASETS = []
    # Before training or evaluation, read the header of every image of DATASETS.TRAIN/TEST and
    # check that it exists and has the size its annotation records (False skips the check).
    cfg.DATASETS.CHECK_IMAGES = True
    # Partial mask supervision of DATASETS.TRAIN without registering a view (ShapeProp, thesis
    # ch. 8; dynnet_d2/data/partial_masks.py): only these classes keep their masks ([] = all).
    cfg.DATASETS.TRAIN_MASK_CLASSES = []
    # Only this fraction in (0, 1] of the training images keeps its masks (1.0 = all).
    cfg.DATASETS.TRAIN_MASK_FRACTION = 1.0
    # Seed of the images that keep their masks when TRAIN_MASK_FRACTION < 1.
    cfg.DATASETS.TRAIN_MASK_SEED = 0


def _add_evaluation_config(cfg: CN) -> None:
    # --eval-only without trained weights (MODEL.WEIGHTS empty, or a checkpoint lacking some of
    # the model's parameters) is an error unless this is True.
    cfg.TEST.ALLOW_UNTRAINED = False


def _add_visualization_config(cfg: CN) -> None:
    # Number of test images drawn with Detectron2's Visualizer into OUTPUT_DIR/visualizations
    # after evaluation (0 = none).
    cfg.TEST.VIS_NUM_IMAGES = 0
    # Score threshold for those drawings.
    cfg.TEST.VIS_SCORE_THRESH = 0.5


def _add_mobilenet_config(cfg: CN) -> None:
    # MobileNetV2 backbone (dynnet_d2/modeling/backbone/mobilenet.py).
    cfg.MODEL.MOBILENET = CN()
    # Stage outputs, named like ResNet's at the same strides:
    # res2 (4), res3 (8), res4 (16), res5 (32).
    cfg.MODEL.MOBILENET.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Channel width multiplier of torchvision's mobilenet_v2; ImageNet weights exist for 1.0 only.
    cfg.MODEL.MOBILENET.WIDTH_MULT = 1.0
    # "FrozenBN": BatchNorm fixed to the loaded (ImageNet) statistics; "BN": trained.
    cfg.MODEL.MOBILENET.NORM = "FrozenBN"


def _add_tfa_config(cfg: CN) -> None:
    # TFA (thesis ch. 7) with fsdet's keys, so fsdet configs carry over.
    # Freeze the whole backbone (FPN included): no gradients, BatchNorm statistics fixed.
    cfg.MODEL.BACKBONE.FREEZE = False
    # Freeze the proposal generator (RPN).
    cfg.MODEL.PROPOSAL_GENERATOR.FREEZE = False
    # Freeze the box head (RoI feature extractor); with the two above only the box predictor
    # (last layer) trains, as in TFA's fine-tuning.
    cfg.MODEL.ROI_HEADS.FREEZE_FEAT = False
    # Box predictor of TFAROIHeads: "FastRCNNOutputLayers" (TFA w/ fc) or "CosineSimOutputLayers"
    # (TFA w/ cos, Eq. 7.2); any name in dynnet_d2.modeling.roi_heads.BOX_PREDICTOR_REGISTRY.
    cfg.MODEL.ROI_HEADS.OUTPUT_LAYER = "FastRCNNOutputLayers"
    # Scale alpha of the cosine classifier (Eq. 7.2): 20 in the thesis; -1 = learnable (from 20).
    cfg.MODEL.ROI_HEADS.COSINE_SCALE = 20.0


def _add_fewshot_config(cfg: CN) -> None:
    # Few-shot runs: the few-shot split, shots and seeds are overrides, not one config per shot.
    cfg.FEWSHOT = CN()
    # Few-shot split (base/novel partition) id; replaces "{split}" in DATASETS.TRAIN/TEST,
    # MODEL.WEIGHTS and OUTPUT_DIR.
    cfg.FEWSHOT.SPLIT = 1
    # K of the K-shot training set; replaces "{shot}" in the same keys.
    cfg.FEWSHOT.SHOT = 0
    # Which sampled K-shot set; replaces "{seed}" in the same keys.
    cfg.FEWSHOT.SEED = 0
    # True: SOLVER.MAX_ITER, SOLVER.STEPS and SOLVER.CHECKPOINT_PERIOD are per shot and get
    # multiplied by FEWSHOT.SHOT when the config is loaded (fsdet scaled schedules by K).
    cfg.FEWSHOT.SCHEDULE_PER_SHOT = False

    # Your own few-shot data, no code (dynnet_d2/data/fewshot/custom.py). With NAME set, registers
    # <NAME>_{train,test}_{all,base,novel} and <NAME>_train_{all,novel}_<K>shot_seed<N>.
    cfg.DATASETS.FEWSHOT = CN()
    # Prefix of the registered names; "" = no custom few-shot data.
    cfg.DATASETS.FEWSHOT.NAME = ""
    # Registered dataset (e.g. from DATASETS.COCO_JSON_DATASETS / VOC_DATASETS) with every class:
    # the base-training data and the pool the K-shot sets are drawn from.
    cfg.DATASETS.FEWSHOT.TRAIN = ""
    # Registered dataset to evaluate on, with the same classes as TRAIN.
    cfg.DATASETS.FEWSHOT.TEST = ""
    # Names of the novel classes; the other classes of TRAIN are the base classes.
    cfg.DATASETS.FEWSHOT.NOVEL_CLASSES = []
    # Shots K of the registered K-shot sets.
    cfg.DATASETS.FEWSHOT.SHOTS = [1, 2, 3, 5, 10]
    # Number of sampled K-shot sets per shot (seeds 0 .. SEEDS-1).
    cfg.DATASETS.FEWSHOT.SEEDS = 10
    # Where the split files go ("" = $DYNNET_DATASETS/fewshot/<NAME>/vocsplit); written on
    # first use, or beforehand with tools/prepare_fewshot_splits.py.
    cfg.DATASETS.FEWSHOT.SPLIT_DIR = ""

    # Cached last-layer fine-tuning (dynnet_d2/engine/last_layer/): when everything but the box
    # predictor is frozen, proposals and box-head features are computed once per image and
    # augmentation (and once per test set) and only the predictor runs in each iteration.
    cfg.FEWSHOT.CACHE = CN()
    # Use the cached path whenever the config freezes backbone, RPN and box head; False = always
    # the full model.
    cfg.FEWSHOT.CACHE.ENABLED = True
    # Folder of the cache files, shared by runs and processes ("" = $DYNNET_CACHE, else
    # ~/.cache/dynnet_d2); files are keyed by the frozen weights, the config and the data.
    cfg.FEWSHOT.CACHE.DIR = ""
    # Largest cache (one training set or one test set) held in memory, in MiB; a larger estimate
    # is an error before anything is computed.
    cfg.FEWSHOT.CACHE.MAX_MEMORY_MB = 4096
    # Storage type of the cached features: "float32" (exact) or "float16" (half the memory).
    cfg.FEWSHOT.CACHE.DTYPE = "float32"


def _add_classification_config(cfg: CN) -> None:
    # ImageClassifier (dynnet_d2/modeling/classifier.py): backbone -> global average pooling ->
    # linear head; the base of SkipNet, IDK cascades, DeepMoE and TAFE-Net.
    cfg.MODEL.CLASSIFIER = CN()
    # Number of classes of the linear head (checked against the datasets' thing_classes).
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = 10
    # Backbone output that is pooled and classified; "" = the backbone's last output feature.
    cfg.MODEL.CLASSIFIER.IN_FEATURE = ""
    # Classification data (dynnet_d2/data/classification.py).
    cfg.INPUT.CLASSIFICATION = CN()
    # Training augmentation: random translation by up to this many pixels, zero padded (0 = none);
    # the horizontal flip is Detectron2's INPUT.RANDOM_FLIP.
    cfg.INPUT.CLASSIFICATION.SHIFT = 0
    # Side in pixels of the square instance crops of the shapes classification view (shapes_cls_*).
    cfg.INPUT.CLASSIFICATION.CROP_SIZE = 32
    # Images per batch of the classification test loader (Detectron2's detection test loader
    # always uses 1 and ignores this key).
    cfg.TEST.IMS_PER_BATCH = 64


def _add_skipnet_config(cfg: CN) -> None:
    # CIFAR-style ResNet-(6n+2) (dynnet_d2/modeling/backbone/cifar_resnet.py): a 3x3 stem and
    # three stages (res2, res3, res4) of n basic blocks each, widths W, 2W, 4W.
    cfg.MODEL.CIFAR_RESNET = CN()
    # Depth 6n+2: 20, 38, 56, 74, 110, ...
    cfg.MODEL.CIFAR_RESNET.DEPTH = 38
    # Channels W of the stem and of the first stage.
    cfg.MODEL.CIFAR_RESNET.WIDTH = 16
    # Stride of the stem convolution (1 as in the CIFAR ResNets; 2 quarters the FLOPs).
    cfg.MODEL.CIFAR_RESNET.STEM_STRIDE = 1
    # Normalization of every convolution ("BN", "SyncBN", "GN", "FrozenBN", ...).
    cfg.MODEL.CIFAR_RESNET.NORM = "BN"
    # Stage outputs returned by the backbone (any of res2, res3, res4).
    cfg.MODEL.CIFAR_RESNET.OUT_FEATURES = ["res4"]

    # SkipNet (thesis ch. 2; dynnet_d2/modeling/skipnet/): a gate before every residual block
    # of a residual backbone decides per input whether the block runs (Eq. 2.1).
    cfg.MODEL.SKIPNET = CN()
    # BACKBONE_REGISTRY name of the residual backbone whose blocks are gated, e.g.
    # "build_cifar_resnet_backbone" or Detectron2's "build_resnet_backbone".
    cfg.MODEL.SKIPNET.BASE_BACKBONE = "build_cifar_resnet_backbone"
    # Gate design (Fig. 2.3): "ffgate1" (2x2 max-pool, two 3x3 convs, pool, fc), "ffgate2"
    # (one 3x3 stride-2 conv, pool, fc) or "rnn" (pool, projection, one LSTM shared by all gates).
    cfg.MODEL.SKIPNET.GATE_TYPE = "rnn"
    # Hidden size of the RNN gate's LSTM (10 in the thesis) and of the projection feeding it.
    cfg.MODEL.SKIPNET.RNN_HIDDEN = 10
    # Training stage: "SP" supervised pre-training, hard gates forward and soft backward
    # (Eq. 2.7); "HRL" hybrid reinforcement learning, sampled gates + REINFORCE (Eq. 2.5-2.6,
    # image classifiers only); "SOFT" soft gates (Highway-style baseline, hard at inference);
    # "SDV" random skipping at SDV_SKIP_RATE in training and inference (stochastic-depth variant).
    cfg.MODEL.SKIPNET.STAGE = "SP"
    # Cost weight alpha of the skipping reward in Eq. 2.5 (HRL); >= 0.
    cfg.MODEL.SKIPNET.ALPHA = 0.1
    # Weight beta of the prediction loss in the relaxed reward; < 0 means alpha / N as in the
    # thesis (N = number of gated blocks).
    cfg.MODEL.SKIPNET.BETA = -1.0
    # HRL: keep every BatchNorm of the backbone (gates included) in evaluation mode, i.e. its
    # SP statistics: sampled gate patterns change what reaches later blocks, so statistics
    # updated under sampling do not match the deterministic gates of inference.
    cfg.MODEL.SKIPNET.HRL_FREEZE_BN = True
    # SDV: probability that a block is skipped, per input and block.
    cfg.MODEL.SKIPNET.SDV_SKIP_RATE = 0.5
    # Inference: "skip" runs a block only on the inputs whose gate executes it (gather, block,
    # scatter); "mask" computes every block and multiplies by the 0/1 gate (the reference code).
    cfg.MODEL.SKIPNET.INFERENCE = "skip"
    # At batch 1 on the CPU, an RNN gate decides with one compiled function (numba: pooling, LSTM
    # step, projection) instead of PyTorch ops; False keeps the PyTorch path (the reference).
    cfg.MODEL.SKIPNET.COMPILED_GATES = True


def _add_shapeprop_config(cfg: CN) -> None:
    # ShapeProp (thesis ch. 8; dynnet_d2/modeling/shapeprop/): MODEL.ROI_HEADS.NAME
    # "ShapePropROIHeads" with MODEL.ROI_MASK_HEAD.NAME "ShapePropMaskHead".
    cfg.MODEL.SHAPEPROP = CN()
    # IoU above which a proposal is a positive bag of a ground-truth box's class (Eq. 8.2).
    cfg.MODEL.SHAPEPROP.MIL_IOU = 0.5
    # 2-D aggregation of a saliency map into its bag score (Eq. 8.3): "avg" or "max".
    cfg.MODEL.SHAPEPROP.MIL_AGGREGATION = "avg"
    # Weight of the MIL loss (loss_mil).
    cfg.MODEL.SHAPEPROP.MIL_LOSS_WEIGHT = 1.0
    # Fraction in (0, 1] of each image's sampled background proposals that enter the MIL loss as
    # negative bags (redrawn every iteration; every foreground proposal always does).
    cfg.MODEL.SHAPEPROP.MIL_NEGATIVE_FRACTION = 0.25
    # Conv-ReLU layers of the saliency ("activating") head (1, as the reference code's
    # CONV_LAYERS (256,); 2 before the second pass).
    cfg.MODEL.SHAPEPROP.SALIENCY_NUM_CONV = 1
    # Their channels.
    cfg.MODEL.SHAPEPROP.SALIENCY_CONV_DIM = 64
    # Latent channels C of the propagation (16 in the thesis).
    cfg.MODEL.SHAPEPROP.LATENT_DIM = 16
    # Window r of the propagation kernels (odd; 3 in the thesis).
    cfg.MODEL.SHAPEPROP.WINDOW = 3
    # Message-passing steps of Eq. 8.4; <= 0 means max(H, W) of the RoI features.
    cfg.MODEL.SHAPEPROP.STEPS = 0
    # One kernel shared by all latent channels (the channel-agnostic variant of Table 8.4).
    cfg.MODEL.SHAPEPROP.CHANNEL_AGNOSTIC = False
    # Conv-ReLU layers of the saliency encoder and of the kernel predictor.
    cfg.MODEL.SHAPEPROP.PROPAGATION_NUM_CONV = 2
    # Channels of the kernel predictor's layers.
    cfg.MODEL.SHAPEPROP.PROPAGATION_CONV_DIM = 64
    # The kernel predictor reads the saliency head's conv layers instead of its own (the
    # reference code's SHARE_FEATURE; False before the second pass).
    cfg.MODEL.SHAPEPROP.SHARE_FEATURES = True
    # Kernel size (odd) of the convolution that predicts the propagation kernels (1 as in the
    # reference code; 3 before the second pass).
    cfg.MODEL.SHAPEPROP.KERNEL_CONV_SIZE = 1
    # What is concatenated to the mask head's input: "activation" (the Shape Activation, ReLU,
    # divided by its maximum, re-encoded by convolutions; thesis Sec. 8.3 and the reference code)
    # or "latent" (the propagation's LATENT_DIM latent channels).
    cfg.MODEL.SHAPEPROP.FUSION = "activation"
    # Convolutions that re-encode the Shape Activation for FUSION "activation".
    cfg.MODEL.SHAPEPROP.FUSION_NUM_CONV = 2
    # Their channels (the channels added to the mask head's input).
    cfg.MODEL.SHAPEPROP.FUSION_CONV_DIM = 16
    # Weight of the Shape Activation's reconstruction loss (loss_shape).
    cfg.MODEL.SHAPEPROP.SHAPE_LOSS_WEIGHT = 1.0


def _add_cascade_config(cfg: CN) -> None:
    # IDK prediction cascades (thesis ch. 4; dynnet_d2/modeling/idk/, tools/run_cascade.py):
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


def add_dynnet_config(cfg: CN) -> CN:
    """Add every dynnet_d2 key (with its default) to ``cfg`` in place and return it."""
    _add_device_config(cfg)
    _add_datasets_config(cfg)
    _add_evaluation_config(cfg)
    _add_visualization_config(cfg)
    _add_mobilenet_config(cfg)
    _add_tfa_config(cfg)
    _add_fewshot_config(cfg)
    _add_classification_config(cfg)
    _add_skipnet_config(cfg)
    _add_shapeprop_config(cfg)
    _add_cascade_config(cfg)
    return cfg


def get_dynnet_cfg() -> CN:
    """Detectron2's default config with dynnet_d2's keys added."""
    from detectron2.config import get_cfg

    return add_dynnet_config(get_cfg())


def config_value(cfg: CN, key: str):
    """The value of the dotted ``key`` (e.g. ``"MODEL.ROI_HEADS.NUM_CLASSES"``) in ``cfg``."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


FEWSHOT_PLACEHOLDERS = {"{split}": "SPLIT", "{shot}": "SHOT", "{seed}": "SEED"}


def resolve_fewshot(cfg: CN) -> CN:
    """Put ``FEWSHOT.SPLIT``/``SHOT``/``SEED`` into the ``{split}``/``{shot}``/``{seed}`` of
    ``DATASETS.TRAIN``/``TEST``, ``MODEL.WEIGHTS`` and ``OUTPUT_DIR``, and scale the schedule by
    the shot with ``FEWSHOT.SCHEDULE_PER_SHOT`` (then set False), in place; return ``cfg``. A
    resolved config stays as it is, so the ``config.yaml`` a run writes loads again unchanged.
    """
    values = (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST, cfg.MODEL.WEIGHTS, cfg.OUTPUT_DIR)
    uses_shot = any("{shot}" in v for v in values) or cfg.FEWSHOT.SCHEDULE_PER_SHOT
    if uses_shot and cfg.FEWSHOT.SHOT < 1:
        raise ValueError("this config is for K-shot fine-tuning ({shot} in its dataset names, "
                         "weights or output folder, or FEWSHOT.SCHEDULE_PER_SHOT): set "
                         "FEWSHOT.SHOT to K >= 1, e.g. `FEWSHOT.SHOT 5 FEWSHOT.SEED 0`")

    def fill(value: str) -> str:
        for placeholder, key in FEWSHOT_PLACEHOLDERS.items():
            value = value.replace(placeholder, str(cfg.FEWSHOT[key]))
        return value

    cfg.DATASETS.TRAIN = tuple(fill(n) for n in cfg.DATASETS.TRAIN)
    cfg.DATASETS.TEST = tuple(fill(n) for n in cfg.DATASETS.TEST)
    cfg.MODEL.WEIGHTS = fill(cfg.MODEL.WEIGHTS)
    cfg.OUTPUT_DIR = fill(cfg.OUTPUT_DIR)
    if cfg.FEWSHOT.SCHEDULE_PER_SHOT:
        shot = cfg.FEWSHOT.SHOT
        cfg.SOLVER.MAX_ITER *= shot
        cfg.SOLVER.STEPS = tuple(step * shot for step in cfg.SOLVER.STEPS)
        cfg.SOLVER.CHECKPOINT_PERIOD *= shot
        cfg.FEWSHOT.SCHEDULE_PER_SHOT = False
    return cfg


def schedule_per_shot(config_file: str, opts: Sequence = ()) -> bool:
    """Whether ``config_file`` with ``opts`` scales its schedule by K
    (``FEWSHOT.SCHEDULE_PER_SHOT``, which :func:`load_config` resolves and then sets False)."""
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return bool(cfg.FEWSHOT.SCHEDULE_PER_SHOT)


def describe_schedule(cfg: CN, per_shot: bool) -> str:
    """The resolved schedule of ``cfg`` in words; ``per_shot``: its config scaled it by K."""
    total = cfg.SOLVER.MAX_ITER
    if not per_shot:
        return f"SOLVER.MAX_ITER {total} iterations"
    return (f"SOLVER.MAX_ITER {total} iterations = {total // cfg.FEWSHOT.SHOT} per shot x "
            f"{cfg.FEWSHOT.SHOT} shot(s) (a per-shot config, FEWSHOT.SCHEDULE_PER_SHOT: a "
            f"SOLVER.MAX_ITER override is per shot too; SOLVER.STEPS {tuple(cfg.SOLVER.STEPS)})")


def load_config(config_file: str, opts=()) -> CN:
    """dynnet_d2's defaults, then ``config_file``, then the ``KEY VALUE`` list ``opts``, then
    :func:`resolve_fewshot`.

    Raises ``FileNotFoundError`` naming ``config_file`` when it is not a file.
    """
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file {config_file!r} does not exist (or is not a file)")
    cfg = get_dynnet_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    return resolve_fewshot(cfg)
