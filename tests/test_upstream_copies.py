"""Bodies of ours that follow an upstream function are pinned to the upstream version they follow
(CONTRIBUTING.md): a fingerprint of the upstream source fails this test when Detectron2 or fvcore
changes it, naming the body of ours to review; and each body is checked to do what upstream does
where they overlap."""
import hashlib
import importlib
import inspect
import textwrap

import pytest
import torch
from fvcore.common.checkpoint import Checkpointer

from dynnet_d2.engine import DynnetCheckpointer

# upstream function -> (our body that follows it, sha256[:16] of the upstream source we followed:
# Detectron2 main of 2024 as the sal-detectron2 0.7.2 wheel has it, fvcore 0.1.5.post20221221)
FOLLOWED = {
    "detectron2.engine.defaults:DefaultTrainer.__init__":
        ("dynnet_d2.engine.trainer:DynnetTrainer.__init__", "966630d2ce1c59bb"),
    "fvcore.common.checkpoint:Checkpointer.save":
        ("dynnet_d2.engine.checkpoint:DynnetCheckpointer.save", "8202ad9441a1d4dc"),
    "detectron2.data.build:get_detection_dataset_dicts":
        ("dynnet_d2.data.build:training_dataset_dicts", "053f13e66f16e958"),
    "detectron2.modeling.roi_heads.roi_heads:StandardROIHeads._forward_mask":
        ("dynnet_d2.methods.shapeprop.heads:ShapePropROIHeads._forward_mask", "63db4d1fd6921b9d"),
}


def resolve(spec: str):
    module, _, qualname = spec.partition(":")
    obj = importlib.import_module(module)
    for name in qualname.split("."):
        obj = getattr(obj, name)
    return obj


def fingerprint(fn) -> str:
    return hashlib.sha256(textwrap.dedent(inspect.getsource(fn)).encode()).hexdigest()[:16]


@pytest.mark.parametrize("upstream", sorted(FOLLOWED))
def test_the_upstream_body_we_follow_is_unchanged(upstream):
    ours, expected = FOLLOWED[upstream]
    resolve(ours)  # ours exists where the table says
    assert fingerprint(resolve(upstream)) == expected, (
        f"{upstream} changed upstream: review {ours}, which follows it, then update its "
        f"fingerprint in this file")


def test_checkpointer_save_writes_what_fvcore_writes(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ours = DynnetCheckpointer(model, str(tmp_path / "ours"), optimizer=optimizer)
    theirs = Checkpointer(model, str(tmp_path / "theirs"), optimizer=optimizer)
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ours.save("model_0000009", iteration=9)
    theirs.save("model_0000009", iteration=9)
    a = torch.load(tmp_path / "ours" / "model_0000009.pth", weights_only=False)
    b = torch.load(tmp_path / "theirs" / "model_0000009.pth", weights_only=False)
    assert a.keys() == b.keys() == {"model", "optimizer", "iteration"}
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key])
    assert a["optimizer"] == b["optimizer"] and a["iteration"] == 9
    assert ((tmp_path / "ours" / "last_checkpoint").read_text()
            == (tmp_path / "theirs" / "last_checkpoint").read_text() == "model_0000009.pth")
