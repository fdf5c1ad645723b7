"""The partially supervised mask head: its training loss is Detectron2's mask loss over the RoIs
whose instance has a mask, a batch without any mask gives a finite zero loss that reaches every
parameter, and inference is Detectron2's."""
from pathlib import Path

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead, build_mask_head
from detectron2.structures import Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage

from dynnet_d2.config import load_config
from dynnet_d2.methods.shapeprop.partial_mask_head import PartialMaskRCNNConvUpsampleHead

CONFIG = (Path(__file__).resolve().parents[3] / "configs/ShapeProp/"
          "mask_rcnn_agnostic_MobileNetV2_FPN_2800it_shapesmasksbase1.yaml")


def proposals(valid):
    n = len(valid)
    boxes = torch.tensor([[4.0 * i, 2.0, 4.0 * i + 20, 30.0] for i in range(n)])
    polygons = [[[4.0 * i + 2, 4, 4.0 * i + 15, 4, 4.0 * i + 15, 25, 4.0 * i + 2, 25]]
                for i in range(n)]
    instances = Instances((40, 60))
    instances.proposal_boxes = Boxes(boxes)
    instances.gt_classes = torch.arange(n) % 3
    instances.gt_masks = PolygonMasks(polygons)
    instances.gt_mask_valid = torch.tensor(valid)
    return instances


def heads():
    cfg = load_config(str(CONFIG), ["MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    partial = build_mask_head(cfg, ShapeSpec(channels=8, width=14, height=14))
    assert isinstance(partial, PartialMaskRCNNConvUpsampleHead)
    torch.nn.init.normal_(partial.predictor.weight, std=0.5)  # Detectron2's ~0 logits hide targets
    plain = MaskRCNNConvUpsampleHead(cfg, ShapeSpec(channels=8, width=14, height=14))
    plain.load_state_dict(partial.state_dict())
    return partial.train(), plain.train()


def test_loss_is_detectron2s_over_the_instances_with_masks():
    partial, plain = heads()
    images = [proposals([True, False, True]), proposals([False, True])]
    features = torch.randn(5, 8, 14, 14)
    keep = torch.tensor([True, False, True, False, True])
    with EventStorage():
        ours = partial(features, images)["loss_mask"]
        reference = plain(features[keep], [i[i.gt_mask_valid] for i in images])["loss_mask"]
        everything = plain(features, images)["loss_mask"]
    assert torch.allclose(ours, reference)
    assert not torch.allclose(ours, everything)  # the placeholders would change it


def test_a_batch_without_masks_gives_a_zero_loss_with_gradients():
    partial, _ = heads()
    with EventStorage():
        loss = partial(torch.randn(3, 8, 14, 14), [proposals([False, False, False])])
    total = loss["loss_mask"]
    assert torch.isfinite(total) and float(total.detach()) == 0.0
    total.backward()
    assert all(p.grad is not None for p in partial.parameters())


def test_inference_is_unchanged():
    partial, plain = heads()
    partial.eval(), plain.eval()
    features = torch.randn(2, 8, 14, 14)

    def detections():
        instances = Instances((40, 60))
        instances.pred_boxes = Boxes(torch.tensor([[0.0, 0, 20, 20], [5.0, 5, 30, 30]]))
        instances.pred_classes = torch.tensor([0, 2])
        return [instances]

    ours, theirs = partial(features, detections()), plain(features, detections())
    assert torch.equal(ours[0].pred_masks, theirs[0].pred_masks)
