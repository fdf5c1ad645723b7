"""TFA checkpoint surgery (dynnet_d2/methods/tfa/surgery.py, tools/ckpt_surgery.py) on the
checkpoints of real tiny Detectron2 models: rows mapped by class name, the result loads into a
model of the target class count, inputs untouched, every error named."""
import copy
import hashlib
import importlib.util
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from dynnet_d2.config import load_config
from dynnet_d2.data.synthetic import ALL_CLASSES, base_classes, novel_classes
from dynnet_d2.engine.checkpoint import DynnetCheckpointer
from dynnet_d2.methods.tfa.surgery import (
    ClassLists,
    PredictorKeys,
    SurgeryError,
    checkpoint_surgery,
    combine,
    dataset_classes,
    fsdet_class_lists,
    load_checkpoint,
    output_path,
    predictor_num_classes,
    randinit,
    remove,
    reset_training_state,
    resolve_class_lists,
)

REPO = Path(__file__).resolve().parents[3]
FASTER = "configs/faster_rcnn_R18half_FPN_2800it_shapes.yaml"
MASK = "configs/mask_rcnn_R18half_FPN_2800it_shapes.yaml"
CLS, BBOX = "roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"
MASK_PRED = "roi_heads.mask_head.predictor"
PREDICTOR = [f"{CLS}.weight", f"{CLS}.bias", f"{BBOX}.weight", f"{BBOX}.bias"]
BASE, NOVEL = list(base_classes(1)), list(novel_classes(1))
ALL_BASE_FIRST = BASE + NOVEL  # shapes_train_all1
CANONICAL = list(ALL_CLASSES)  # shapes_train: novel classes interleaved with the base ones
VOC_NAMES = {"person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "boat", "bird",
             "cat", "dog", "horse", "sheep", "cow", "bottle", "chair", "couch", "potted plant",
             "dining table", "tv"}


def _model(num_classes, config=FASTER, *opts):
    cfg = load_config(str(REPO / config), ["MODEL.ROI_HEADS.NUM_CLASSES", num_classes,
                                           "MODEL.DEVICE", "cpu", *opts])
    torch.manual_seed(num_classes)
    return build_model(cfg)


def _save(model, path, **extra):
    """A checkpoint as Detectron2's trainer writes it (model, optimizer, scheduler, iteration)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
    checkpointer = DetectionCheckpointer(model, str(path.parent), optimizer=optimizer,
                                         scheduler=scheduler)
    checkpointer.save(path.stem, iteration=123, **extra)
    return path


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("surgery")
    return {"base": _save(_model(15), root / "base" / "model_final.pth"),
            "novel": _save(_model(5), root / "novel" / "model_final.pth"), "root": root}


@pytest.fixture(scope="module")
def base_sd(ckpts):
    return load_checkpoint(ckpts["base"])["model"]


@pytest.fixture(scope="module")
def novel_sd(ckpts):
    return load_checkpoint(ckpts["novel"])["model"]


def _rows(sd, name, c, per_class):
    return sd[name][c * per_class:(c + 1) * per_class]


def _assert_rows_from(out, src, out_classes, src_classes, prefix=""):
    """Every class of ``out_classes`` known to ``src_classes`` has ``src``'s rows, exactly."""
    for t, name in enumerate(out_classes):
        if name in src_classes:
            s = src_classes.index(name)
            for key, per in ((CLS, 1), (BBOX, 4)):
                for part in (".weight", ".bias"):
                    if prefix + key + part in src:
                        assert torch.equal(_rows(out, prefix + key + part, t, per),
                                           _rows(src, prefix + key + part, s, per)), (name, key)


def _assert_loads_strictly(sd, num_classes, *opts):
    model = _model(num_classes, *opts) if opts else _model(num_classes)
    model.load_state_dict(sd, strict=True)  # no missing / unexpected keys, every shape right


# --- randinit ---------------------------------------------------------------------------------


def test_randinit_maps_rows_by_name_and_initialises_novel_rows(base_sd):
    out = randinit(base_sd, BASE, CANONICAL, generator=torch.Generator().manual_seed(0))
    dim = base_sd[f"{CLS}.weight"].shape[1]
    assert out[f"{CLS}.weight"].shape == (21, dim) and out[f"{CLS}.bias"].shape == (21,)
    assert out[f"{BBOX}.weight"].shape == (80, dim) and out[f"{BBOX}.bias"].shape == (80,)
    _assert_rows_from(out, base_sd, CANONICAL, BASE)
    assert torch.equal(out[f"{CLS}.weight"][-1], base_sd[f"{CLS}.weight"][-1])  # background
    assert torch.equal(out[f"{CLS}.bias"][-1], base_sd[f"{CLS}.bias"][-1])
    novel_rows = [CANONICAL.index(c) for c in NOVEL]
    assert novel_rows == [2, 5, 7, 11, 16]  # interleaved: a positional copy would fail
    for key, per in ((CLS, 1), (BBOX, 4)):
        weights = torch.cat([_rows(out, f"{key}.weight", t, per) for t in novel_rows])
        biases = torch.cat([_rows(out, f"{key}.bias", t, per) for t in novel_rows])
        assert 0.009 < weights.std().item() < 0.011 and abs(weights.mean().item()) < 0.002
        assert not biases.any()
    assert list(out) == list(base_sd)  # same keys, same order
    assert out._metadata is base_sd._metadata  # module versions, read by load_state_dict
    assert all(out[k] is v for k, v in base_sd.items() if k not in PREDICTOR)
    _assert_loads_strictly(out, 20)


def test_randinit_is_seeded_by_the_generator(base_sd):
    def run(seed):
        return randinit(base_sd, BASE, ALL_BASE_FIRST,
                        generator=torch.Generator().manual_seed(seed))[f"{CLS}.weight"]
    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_voc_default_takes_the_source_classes_as_the_first_of_20(base_sd):
    classes = resolve_class_lists(15)
    assert len(classes.target) == 20 and classes.source == classes.target[:15]
    assert classes.novel == classes.target[15:]
    out = randinit(base_sd, classes.source, classes.target)
    assert torch.equal(out[f"{CLS}.weight"][:15], base_sd[f"{CLS}.weight"][:15])
    assert torch.equal(out[f"{BBOX}.weight"][:60], base_sd[f"{BBOX}.weight"])
    assert torch.equal(out[f"{CLS}.weight"][20], base_sd[f"{CLS}.weight"][15])  # background
    assert not out[f"{CLS}.bias"][15:20].any()
    _assert_loads_strictly(out, 20)
    # With target names and no source names the source is the target's first classes.
    assert resolve_class_lists(15, target=ALL_BASE_FIRST) == ClassLists(BASE, ALL_BASE_FIRST,
                                                                        NOVEL)


def test_coco_60_base_classes_in_base_order_to_80_in_id_order():
    classes = fsdet_class_lists("coco", 60)
    assert len(classes.source) == 60 and len(classes.target) == 80
    assert set(classes.novel) == VOC_NAMES and not set(classes.source) & VOC_NAMES
    assert classes.target[:3] == ["person", "bicycle", "car"] and classes.source[0] == "truck"
    src = _model(60).state_dict()
    out = randinit(src, classes.source, classes.target,
                   generator=torch.Generator().manual_seed(0))
    spot = {"truck": (0, 7), "traffic light": (1, 9), "toothbrush": (59, 79)}  # COCO ids 8, 10, 90
    for name, (s, t) in spot.items():
        assert classes.source[s] == name and classes.target[t] == name
        assert torch.equal(out[f"{CLS}.weight"][t], src[f"{CLS}.weight"][s])
        assert torch.equal(_rows(out, f"{BBOX}.weight", t, 4), _rows(src, f"{BBOX}.weight", s, 4))
    assert not out[f"{CLS}.bias"][0] and 0 < out[f"{CLS}.weight"][0].std() < 0.02  # person
    assert torch.equal(out[f"{CLS}.weight"][80], src[f"{CLS}.weight"][60])
    _assert_rows_from(out, src, classes.target, classes.source)
    _assert_loads_strictly(out, 80)


def _synthetic_sd(num_classes, dim=4, cls_bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict(backbone=torch.randn(3, generator=g))
    sd[f"{CLS}.weight"] = torch.randn(num_classes + 1, dim, generator=g)
    if cls_bias:
        sd[f"{CLS}.bias"] = torch.randn(num_classes + 1, generator=g)
    sd[f"{BBOX}.weight"] = torch.randn(4 * num_classes, dim, generator=g)
    sd[f"{BBOX}.bias"] = torch.randn(4 * num_classes, generator=g)
    return sd


def test_lvis_rare_classes_are_novel_and_untrained_rows_are_not_copied():
    full = fsdet_class_lists("lvis", 1230)  # fsdet's base model: all 1230 rows, base ones trained
    assert len(full.target) == 1230 and len(full.novel) == 454
    assert sum(c is None for c in full.source) == 454
    src = _synthetic_sd(1230)
    out = randinit(src, full.source, full.target)
    for t, name in enumerate(full.target):
        same = torch.equal(out[f"{CLS}.weight"][t], src[f"{CLS}.weight"][t])
        assert same == (name not in full.novel), name
    base_only = fsdet_class_lists("lvis", 776)
    assert len(base_only.source) == 776 and None not in base_only.source
    out = randinit(_synthetic_sd(776), base_only.source, base_only.target)
    assert out[f"{CLS}.weight"].shape == (1231, 4) and out[f"{BBOX}.weight"].shape == (4920, 4)


def test_cosine_classifier_without_bias_keeps_its_scale(base_sd, novel_sd):
    def cosine(sd):
        sd = OrderedDict((k, v) for k, v in sd.items() if k != f"{CLS}.bias")
        sd["roi_heads.box_predictor.scale"] = torch.tensor([20.0])
        return sd
    base, novel = cosine(base_sd), cosine(novel_sd)
    out = randinit(base, BASE, CANONICAL)
    assert f"{CLS}.bias" not in out and out[f"{CLS}.weight"].shape[0] == 21
    assert out["roi_heads.box_predictor.scale"] is base["roi_heads.box_predictor.scale"]
    _assert_rows_from(out, base, CANONICAL, BASE)
    out = combine(base, novel, BASE, NOVEL, CANONICAL)
    _assert_rows_from(out, base, CANONICAL, BASE)
    _assert_rows_from(out, novel, CANONICAL, NOVEL)
    assert f"{CLS}.bias" not in out
    assert set(remove(base)) == set(base) - set(PREDICTOR)
    with pytest.raises(SurgeryError, match=r"only the novel checkpoint has .*cls_score\.bias"):
        combine(base, novel_sd, BASE, NOVEL, CANONICAL)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_surgery_on_cuda_tensors_matches_the_cpu_result(base_sd, novel_sd):
    def cuda(sd):
        return OrderedDict((k, v.cuda()) for k, v in sd.items())
    for out, ref in (
            (randinit(cuda(base_sd), BASE, CANONICAL, generator=torch.Generator().manual_seed(3)),
             randinit(base_sd, BASE, CANONICAL, generator=torch.Generator().manual_seed(3))),
            (combine(cuda(base_sd), cuda(novel_sd), BASE, NOVEL, CANONICAL),
             combine(base_sd, novel_sd, BASE, NOVEL, CANONICAL))):
        for key in PREDICTOR:
            assert out[key].is_cuda and torch.equal(out[key].cpu(), ref[key]), key


def test_ddp_prefixed_keys_keep_their_prefix(base_sd):
    wrapped = OrderedDict(("module." + k, v) for k, v in base_sd.items())
    out = randinit(wrapped, BASE, CANONICAL)
    assert all(k.startswith("module.") for k in out)
    assert out[f"module.{CLS}.weight"].shape[0] == 21
    _assert_rows_from(out, wrapped, CANONICAL, BASE, prefix="module.")


def test_class_agnostic_box_regression_and_mask_predictor():
    agnostic = ("MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", True)
    src = _model(15, FASTER, *agnostic).state_dict()
    out = randinit(src, BASE, CANONICAL)
    assert out[f"{BBOX}.weight"] is src[f"{BBOX}.weight"] and src[f"{BBOX}.weight"].shape[0] == 4
    _assert_loads_strictly(out, 20, FASTER, *agnostic)
    src = _model(15, MASK).state_dict()
    assert src[f"{MASK_PRED}.weight"].shape[0] == 15
    out = randinit(src, BASE, CANONICAL)
    for t, name in enumerate(CANONICAL):
        if name in BASE:
            assert torch.equal(out[f"{MASK_PRED}.weight"][t],
                               src[f"{MASK_PRED}.weight"][BASE.index(name)])
    _assert_loads_strictly(out, 20, MASK)
    assert not {f"{MASK_PRED}.weight", f"{MASK_PRED}.bias"} & set(remove(src))


# --- combine, remove, whole checkpoints -------------------------------------------------------


@pytest.mark.parametrize("target", [ALL_BASE_FIRST, CANONICAL])
def test_combine_takes_base_rows_from_src1_and_novel_rows_from_src2(base_sd, novel_sd, target):
    out = combine(base_sd, novel_sd, BASE, NOVEL, target)
    _assert_rows_from(out, base_sd, target, BASE)
    _assert_rows_from(out, novel_sd, target, NOVEL)
    assert torch.equal(out[f"{CLS}.weight"][-1], base_sd[f"{CLS}.weight"][-1])
    assert all(out[k] is v for k, v in base_sd.items() if k not in PREDICTOR)
    _assert_loads_strictly(out, 20)


def test_remove_drops_the_predictor_only(base_sd):
    out = remove(base_sd)
    assert list(out) == [k for k in base_sd if k not in PREDICTOR]
    missing, unexpected = _model(5).load_state_dict(out, strict=False)
    assert sorted(missing) == sorted(PREDICTOR) and not unexpected


def test_checkpoint_surgery_resets_training_state_and_leaves_its_input(ckpts):
    checkpoint = load_checkpoint(ckpts["base"])
    checkpoint["trainer"] = {"iteration": 123, "hooks": {}}
    assert {"optimizer", "scheduler"} <= set(checkpoint) and checkpoint["iteration"] == 123
    before = copy.deepcopy(checkpoint)
    for method, kwargs in (("randinit", {}), ("remove", {}),
                           ("combine", {"novel_checkpoint": load_checkpoint(ckpts["novel"])})):
        out = checkpoint_surgery(method, checkpoint, ClassLists(BASE, CANONICAL, NOVEL), **kwargs)
        assert set(out) == {"model", "iteration"} and out["iteration"] == 0
    assert set(checkpoint) == set(before) and checkpoint["iteration"] == 123
    assert list(checkpoint["model"]) == list(before["model"])
    assert all(torch.equal(v, before["model"][k]) for k, v in checkpoint["model"].items())
    assert reset_training_state({"model": {}})["iteration"] == 0


# --- errors -----------------------------------------------------------------------------------


def _without(sd, *keys):
    return OrderedDict((k, v) for k, v in sd.items() if k not in keys)


def _replaced(sd, **new):
    return OrderedDict((k, new.get(k.replace(".", "_"), v)) for k, v in sd.items())


@pytest.mark.parametrize("call,message", [
    (lambda b, n: randinit(_without(b, f"{CLS}.weight", f"{CLS}.bias"), BASE, CANONICAL),
     "the source checkpoint has no box predictor: looked for "
     "roi_heads.box_predictor.cls_score.weight and roi_heads.box_predictor.bbox_pred.weight"),
    (lambda b, n: remove({"backbone.w": torch.zeros(1)}), "has no box predictor"),
    (lambda b, n: randinit(b, BASE[:14], CANONICAL),
     r"has 16 rows in roi_heads.box_predictor.cls_score.weight \(15 classes \+ background\) "
     r"but 14 classes were given"),
    (lambda b, n: randinit(_replaced(b, roi_heads_box_predictor_bbox_pred_weight=torch.zeros(
        59, 256)), BASE, CANONICAL),
     r"bbox_pred.weight has 59 rows .* expected 4\*15=60 \(class-specific\) or 4"),
    (lambda b, n: randinit(_replaced(b, roi_heads_box_predictor_cls_score_bias=torch.zeros(
        15)), BASE, CANONICAL),
     r"cls_score.bias has shape \(15,\), its weight \(16, 256\): expected \(16,\)"),
    (lambda b, n: randinit(b, BASE, CANONICAL + ["circle"]), "'circle' more than once"),
    (lambda b, n: randinit(b, BASE, ["x", "y"]), "no target class .* is a class of the source"),
    (lambda b, n: combine(b, n, BASE, NOVEL, [c for c in CANONICAL if c != "ellipse"]),
     r"the novel checkpoint's classes \('triangle', .* are not the target's classes missing "
     r"from the base checkpoint \('triangle', 'star', 'ring', 'arrow'\)"),
    (lambda b, n: combine(b, n, BASE, NOVEL, CANONICAL + ["blob"]),
     r"target classes 'blob' are in neither the base nor the novel checkpoint's classes"),
    (lambda b, n: combine(b, n, BASE, NOVEL[:4], CANONICAL),
     r"the novel checkpoint \(src2\) has 6 rows .* but 4 classes were given"),
    (lambda b, n: combine(b, _replaced(n, roi_heads_box_predictor_cls_score_weight=torch.zeros(
        6, 128)), BASE, NOVEL, CANONICAL),
     r"feature sizes differ: roi_heads.box_predictor.cls_score.weight is \(16, 256\) in the base "
     r"checkpoint but \(6, 128\) in the novel checkpoint"),
    (lambda b, n: resolve_class_lists(25), "has 25 classes, more than the target's 20"),
    (lambda b, n: resolve_class_lists(15, target=CANONICAL, tar_num_classes=21),
     "--tar-num-classes 21 disagrees with the 20 target classes"),
    (lambda b, n: resolve_class_lists(15, source=BASE), "source classes were given without"),
    (lambda b, n: randinit(b, fsdet_class_lists("coco", 15).source, CANONICAL),
     "has 16 rows .* but 60 classes were given"),
    (lambda b, n: dataset_classes("shapes_train_base"),
     "dataset 'shapes_train_base' is not registered; did you mean"),
    (lambda b, n: predictor_num_classes(b, PredictorKeys(cls_score="roi_heads.cls")),
     "looked for roi_heads.cls.weight"),
])
def test_errors_name_the_problem(base_sd, novel_sd, call, message):
    with pytest.raises(SurgeryError, match=message):
        call(base_sd, novel_sd)


def test_unreadable_inputs_are_named(tmp_path):
    with pytest.raises(SurgeryError, match=r"--src1 '.*nope.pth' does not exist"):
        load_checkpoint(tmp_path / "nope.pth", "--src1")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SurgeryError, match="is not a checkpoint PyTorch can load"):
        load_checkpoint(tmp_path / "junk.pth")
    torch.save(_synthetic_sd(3), tmp_path / "sd.pth")  # a bare state dict is wrapped
    assert load_checkpoint(tmp_path / "sd.pth").keys() == {"model"}


# --- command line -----------------------------------------------------------------------------


def _cli():
    spec = importlib.util.spec_from_file_location("ckpt_surgery_cli", REPO / "tools" /
                                                  "ckpt_surgery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, str(REPO / "tools" / "ckpt_surgery.py"),
                           *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)


def test_cli_randinit_by_dataset_names(ckpts, tmp_path):
    digest = _sha(ckpts["base"])
    proc = _run("--method", "randinit", "--src1", ckpts["base"], "--save-dir", tmp_path,
                "--src-dataset", "shapes_train_base1", "--tar-dataset", "shapes_train")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "model_reset_surgery.pth"
    assert f"Saved the randinit checkpoint to {out}" in proc.stdout
    assert _sha(ckpts["base"]) == digest
    result = torch.load(out, weights_only=True)
    assert set(result) == {"model", "iteration"} and result["iteration"] == 0
    _assert_rows_from(result["model"], load_checkpoint(ckpts["base"])["model"], CANONICAL, BASE)
    model = _model(20)
    DynnetCheckpointer(model, strict=True).load(str(out))  # raises on missing keys or shapes
    assert torch.equal(model.roi_heads.box_predictor.cls_score.weight, result["model"][
        f"{CLS}.weight"])


def test_cli_error_exits_2_with_one_line_and_writes_nothing(ckpts, tmp_path):
    digests = _sha(ckpts["base"]), _sha(ckpts["novel"])
    # src2 is the base model again: 15 classes where the 5 novel ones are expected.
    proc = _run("--method", "combine", "--src1", ckpts["base"], "--src2", ckpts["base"],
                "--save-dir", tmp_path, "--tar-dataset", "shapes_train_all1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("ckpt_surgery.py: error: the novel checkpoint (src2) has 16 rows")
    assert "but 5 classes were given" in lines[-1]
    assert not any("Traceback" in line for line in lines)
    assert list(tmp_path.iterdir()) == []
    assert (_sha(ckpts["base"]), _sha(ckpts["novel"])) == digests


def test_cli_fsdet_flags_voc_default_and_combine(ckpts, capsys):
    cli = _cli()
    assert cli.main(["--src1", str(ckpts["base"]), "--method", "randinit", "--tar-name", "t"]) == 0
    out = ckpts["base"].parent / "t_surgery.pth"
    assert out == output_path("randinit", ckpts["base"], None, "t") and out.is_file()
    assert torch.load(out, weights_only=True)["model"][f"{CLS}.weight"].shape[0] == 21
    save_dir = ckpts["root"] / "combined"
    assert cli.main(["--src1", str(ckpts["base"]), "--src2", str(ckpts["novel"]), "--method",
                     "combine", "--save-dir", str(save_dir)]) == 0
    result = torch.load(save_dir / "model_reset_combine.pth", weights_only=True)["model"]
    _assert_loads_strictly(result, 20)
    novel_sd = load_checkpoint(ckpts["novel"])["model"]
    assert torch.equal(result[f"{CLS}.weight"][15:20], novel_sd[f"{CLS}.weight"][:5])
    assert "model_reset_combine.pth" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--method", "randinit", "--param-name", CLS], "--param-name takes the classifier and"),
    (["--method", "randinit", "--src2", "{base}"], "--src2 is needed by, and only by"),
    (["--method", "combine", "--src2", "{base_dir}/missing.pth"], "missing.pth' does not exist"),
    (["--method", "randinit", "--coco", "--tar-dataset", "shapes_train"],
     "--coco sets the class lists"),
])
def test_cli_rejects_bad_flags(ckpts, capsys, args, message):
    names = {"base": ckpts["base"], "base_dir": ckpts["base"].parent}
    before = sorted(p.name for p in ckpts["base"].parent.iterdir())
    argv = ["--src1", str(ckpts["base"])] + [a.format(**names) for a in args]
    assert _cli().main(argv) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in ckpts["base"].parent.iterdir()) == before


def test_cli_never_overwrites_an_input(ckpts, tmp_path, capsys):
    src = tmp_path / "model_reset_surgery.pth"  # randinit run again on its own output
    src.write_bytes(ckpts["base"].read_bytes())
    assert _cli().main(["--src1", str(src), "--method", "randinit"]) == 2
    assert "would overwrite an input" in capsys.readouterr().err
    assert _sha(src) == _sha(ckpts["base"]) and [p.name for p in tmp_path.iterdir()] == [src.name]
