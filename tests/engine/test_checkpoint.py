"""DynnetCheckpointer: crash leftovers removed, unreadable files named, strict loading (missing,
reshaped and unexpected predictor keys), frozen parts that must load."""
import pytest
import torch
from torch import nn

from dynnet_d2.config import load_config
from dynnet_d2.engine import CheckpointLoadError, CheckpointMismatchError, DynnetCheckpointer
from dynnet_d2.engine.checkpoint import frozen_parts


def test_stale_temporaries_of_killed_saves_are_removed_at_start(tmp_path):
    leftovers = [".model_0000499.pth.k2j4_x9a.tmp", ".last_checkpoint.ab12cd34.tmp"]
    kept = [".notes.txt.ab12cd34.tmp", "model_0000499.pth", ".model_final.pth.tmp",
            "last_checkpoint"]
    for name in leftovers + kept:
        (tmp_path / name).write_bytes(b"x" * 10)
    DynnetCheckpointer(nn.Linear(2, 2), str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b""])
def test_corrupt_weights_file_is_named(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointLoadError,
                       match=r"weights.pth' is not a valid checkpoint.*MODEL.WEIGHTS") as e:
        DynnetCheckpointer(nn.Linear(2, 2)).load(str(path))
    assert "weights_only=False" not in str(e.value)


def test_save_then_strict_load_roundtrip_and_mismatch(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    DynnetCheckpointer(model, str(tmp_path)).save("model_final")
    copy = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    DynnetCheckpointer(copy, strict=True).load(str(tmp_path / "model_final.pth"))
    assert all(torch.equal(a, b)
               for a, b in zip(model.state_dict().values(), copy.state_dict().values()))

    other = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 5), nn.Linear(5, 1))
    with pytest.raises(CheckpointMismatchError) as e:
        DynnetCheckpointer(other, strict=True).load(str(tmp_path / "model_final.pth"))
    assert "1.weight (checkpoint (4, 3), model (5, 3))" in str(e.value)
    assert "the checkpoint has no 2.weight, 2.bias" in str(e.value)
    DynnetCheckpointer(other).load(str(tmp_path / "model_final.pth"))  # not strict: loads what fits


def test_fewshot_fine_tuning_from_a_checkpoint_without_surgery_says_to_run_it(tmp_path):
    """Detectron2 would silently re-initialise a predictor of another class count."""
    class Detector(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.roi_heads = nn.Module()
            self.roi_heads.box_predictor = nn.Module()
            self.roi_heads.box_predictor.cls_score = nn.Linear(4, num_classes + 1)

    DynnetCheckpointer(Detector(15), str(tmp_path)).save("model_final")
    with pytest.raises(CheckpointMismatchError, match=r"cls_score.weight \(checkpoint \(16, 4\), "
                                                      r"model \(21, 4\)\).*ckpt_surgery.py"):
        DynnetCheckpointer(Detector(20), predictor_must_fit=True).load(
            str(tmp_path / "model_final.pth"))
    DynnetCheckpointer(Detector(20)).load(str(tmp_path / "model_final.pth"))  # plain fine-tuning


class _Detector(nn.Module):
    """The parts of a detector the checks look at: a backbone, a box head and a predictor."""

    def __init__(self, bias=True, backbone=True):
        super().__init__()
        if backbone:
            self.backbone = nn.Linear(3, 4)
        self.roi_heads = nn.Module()
        self.roi_heads.box_head = nn.Linear(4, 4)
        self.roi_heads.box_predictor = nn.Module()
        self.roi_heads.box_predictor.cls_score = nn.Linear(4, 3, bias=bias)


def test_strict_load_rejects_unexpected_predictor_keys(tmp_path):
    """An FC classifier's bias has no place in a cosine classifier: it was dropped silently."""
    DynnetCheckpointer(_Detector(bias=True), str(tmp_path)).save("fc")
    with pytest.raises(CheckpointMismatchError,
                       match=r"box predictor has no roi_heads\.box_predictor\.cls_score\.bias.*"
                             r"TEST\.ALLOW_UNTRAINED"):
        DynnetCheckpointer(_Detector(bias=False), strict=True).load(str(tmp_path / "fc.pth"))
    DynnetCheckpointer(_Detector(bias=False)).load(str(tmp_path / "fc.pth"))  # not strict: loads
    # Unexpected keys outside the predictor (e.g. BatchNorm counters of a frozen part) are fine.
    DynnetCheckpointer(_Detector(bias=True, backbone=False), strict=True).load(
        str(tmp_path / "fc.pth"))


def test_frozen_parts_must_load_from_the_weights(tmp_path):
    parts = {"backbone": "MODEL.BACKBONE.FREEZE",
             "roi_heads.box_head": "MODEL.ROI_HEADS.FREEZE_FEAT"}
    torch.save({"model": nn.Sequential(nn.Linear(3, 4)).state_dict()}, tmp_path / "other.pth")
    with pytest.raises(CheckpointMismatchError) as e:
        DynnetCheckpointer(_Detector(), frozen_parts=parts).load(str(tmp_path / "other.pth"))
    assert ("backbone (MODEL.BACKBONE.FREEZE): 2 of 2 tensors not loaded, e.g. backbone.weight, "
            "backbone.bias; roi_heads.box_head (MODEL.ROI_HEADS.FREEZE_FEAT): 2 of 2"
            ) in str(e.value)
    assert "ckpt_surgery.py" in str(e.value)
    with pytest.raises(CheckpointMismatchError,
                       match=r"MODEL.WEIGHTS is empty, but the config freezes backbone "
                             r"\(MODEL.BACKBONE.FREEZE\)"):
        DynnetCheckpointer(_Detector(), frozen_parts=parts).load("")
    # A checkpoint that provides the frozen parts loads, whatever its predictor.
    DynnetCheckpointer(_Detector(), str(tmp_path)).save("full")
    DynnetCheckpointer(_Detector(bias=False), frozen_parts=parts).load(str(tmp_path / "full.pth"))
    DynnetCheckpointer(_Detector()).load("")  # nothing frozen: an empty MODEL.WEIGHTS is allowed


def test_frozen_parts_of_the_tfa_configs():
    cos = load_config("configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_cos_all_100itxK_shapes.yaml",
                      ["FEWSHOT.SHOT", 1])
    assert frozen_parts(cos) == {"backbone": "MODEL.BACKBONE.FREEZE",
                                 "proposal_generator": "MODEL.PROPOSAL_GENERATOR.FREEZE",
                                 "roi_heads.box_head": "MODEL.ROI_HEADS.FREEZE_FEAT"}
    full = load_config("configs/TFA/faster_rcnn_MobileNetV2_FPN_ft_full_all_100itxK_shapes.yaml",
                       ["FEWSHOT.SHOT", 1])
    assert frozen_parts(full) == {}
