"""FSRW's pieces (thesis ch. 6): Eq. 6.1 for all classes at once against a per-class loop, the
class losses of Table 6.5 against hand computations, the support pool's episodes and checks, the
support tensors, and every registered reweighting module built from the config."""
import math
from collections import Counter

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_backbone
from detectron2.structures import BoxMode

from dynnet_d2.config import load_config
from dynnet_d2.methods.fsrw import (
    FSRW_REWEIGHTER_REGISTRY,
    SupportError,
    SupportPool,
    build_reweighter,
    class_loss,
    reweight,
    support_input,
)
from dynnet_d2.methods.fsrw.analysis import (
    plot_class_vectors,
    plot_tsne,
    sort_by_class_variance,
    tsne_with_class_means,
)

CONFIG = "configs/TFA/faster_rcnn_MobileNetV2_FPN_base_2800it_shapes.yaml"


@pytest.mark.parametrize("shape,reweighted", [((2, 6, 3, 4), 6), ((2, 6, 3, 4), 3),
                                              ((5, 6), 6), ((5, 6), 2)])
def test_reweighting_all_classes_at_once_equals_a_loop_over_classes(shape, reweighted):
    torch.manual_seed(0)
    features = torch.randn(shape, requires_grad=True)
    vectors = torch.randn(4, reweighted, requires_grad=True)
    batched = reweight(features, vectors)
    looped = []
    for w in vectors:  # F_i = F (x) w_i, channel by channel
        channels = [features[:, c] * (w[c] if c < reweighted else 1.0)
                    for c in range(shape[1])]
        looped.append(torch.stack(channels, dim=1))
    looped = torch.stack(looped, dim=1)
    assert batched.shape == (shape[0], 4, *shape[1:])
    torch.testing.assert_close(batched, looped)
    weights = torch.randn_like(batched)
    grads = torch.autograd.grad((batched * weights).sum(), (features, vectors))
    expected = torch.autograd.grad((looped * weights).sum(), (features, vectors))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_reweighting_rejects_vectors_longer_than_the_features():
    with pytest.raises(ValueError, match=r"features \(2, 3, 4, 4\).*vectors \(5, 4\)"):
        reweight(torch.zeros(2, 3, 4, 4), torch.zeros(5, 4))


def test_class_losses_against_hand_computations():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    gt = torch.tensor([0, 2])
    # Eq. 6.3: -log softmax(c)_gt, mean over the predictions
    softmax = [-(2.0 - math.log(math.exp(2.0) + 1 + math.exp(-1.0))),
               -(0.0 - math.log(math.exp(0.5) + math.exp(1.5) + 1))]
    assert class_loss(logits, gt, "softmax").item() == pytest.approx(sum(softmax) / 2, rel=1e-6)

    def bce(z, y):
        return -(y * math.log(1 / (1 + math.exp(-z))) + (1 - y) * math.log(1 / (1 + math.exp(z))))

    multi = sum(bce(z, float(i == g)) for row, g in zip(logits.tolist(), gt.tolist())
                for i, z in enumerate(row)) / 2
    assert class_loss(logits, gt, "multi_binary").item() == pytest.approx(multi, rel=1e-6)
    support = torch.tensor([0, 1])  # the first saw its own class, the second class 1's support
    single = (bce(2.0, 1.0) + bce(1.5, 0.0)) / 2
    assert class_loss(logits, gt, "single_binary", support).item() == pytest.approx(single,
                                                                                  rel=1e-6)


def test_class_loss_without_predictions_is_zero_with_gradients_and_errors_are_named():
    logits = torch.zeros(0, 3, requires_grad=True)
    loss = class_loss(logits, torch.zeros(0, dtype=torch.long), "softmax")
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
    with pytest.raises(ValueError, match="MODEL.FSRW.LOSS='hinge'"):
        class_loss(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), "hinge")
    with pytest.raises(ValueError, match="support_classes"):
        class_loss(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), "single_binary")


def _record(name, boxes, width=20, height=10):
    return {"file_name": name, "width": width, "height": height,
            "annotations": [{"bbox": b, "bbox_mode": BoxMode.XYXY_ABS, "category_id": c}
                            for c, b in boxes]}


def test_episodes_draw_one_instance_per_class_from_the_seed_and_iteration_alone():
    dicts = [_record("a.png", [(0, [0, 0, 5, 5]), (1, [5, 5, 9, 9])]),
             _record("b.png", [(0, [1, 1, 4, 4]), (0, [2, 2, 8, 8])])]
    pool = SupportPool(dicts, ["cat", "dog"], "toy")
    assert pool.counts() == {"cat": 3, "dog": 1}
    episodes = [pool.episode(seed=3, iteration=i) for i in range(40)]
    for episode in episodes:
        assert [a["category_id"] for _, a in episode] == [0, 1]
    # another process (another DDP rank, a resumed run) builds its own pool: the same episodes
    again = SupportPool(dicts, ["cat", "dog"], "toy")
    assert [again.episode(3, i) for i in range(40)] == episodes
    cats = Counter(tuple(episode[0][1]["bbox"]) for episode in episodes)
    assert len(cats) == 3  # every cat instance is drawn
    assert [pool.episode(4, i) for i in range(40)] != episodes
    # the single-binary loss's episodes: one class and one of its instances, as deterministic
    single = [pool.one_class_episode(3, i) for i in range(40)]
    assert [again.one_class_episode(3, i) for i in range(40)] == single
    assert {cls for cls, _ in single} == {0, 1}
    assert all(annotation["category_id"] == cls for cls, (_, annotation) in single)


def test_kshot_sets_give_exactly_k_support_instances_per_class():
    name = "shapes_train_all1_1shot_seed0"
    pool = SupportPool(DatasetCatalog.get(name), MetadataCatalog.get(name).thing_classes, name)
    assert set(pool.counts().values()) == {1}


def test_a_class_without_support_and_a_box_outside_its_image_are_named():
    with pytest.raises(SupportError, match=r"toy: no support example of class\(es\) \['dog'\]"):
        SupportPool([_record("a.png", [(0, [0, 0, 5, 5])])], ["cat", "dog"], "toy")
    with pytest.raises(SupportError, match=r"toy: support box \[15.0, 0.0, 25.0, 5.0\] of b.png "
                                           r"is not inside its 20x10 image"):
        SupportPool([_record("b.png", [(0, [15, 0, 25, 5])])], ["cat"], "toy")


def test_support_input_crops_the_window_and_marks_the_box():
    # a horizontal ramp: pixel x holds x + 0.5 (its centre) in every channel
    image = (torch.arange(40, dtype=torch.float32) + 0.5).expand(3, 12, 40).contiguous()
    box = (10.0, 4.0, 18.0, 12.0)  # 8 x 8, centre (14, 8)
    support = support_input(image, box, ["image", "mask", "object"], size=8, context=2.0)
    assert support.shape == (7, 8, 8)
    # the window is x in [6, 22), y in [0, 16): 2 px per cell, cell centres 7, 9, ..., 21
    torch.testing.assert_close(support[0, 0], torch.arange(7.0, 22.0, 2.0))
    assert (support[:3, 7] == 0).all()  # y in [14, 16) lies below the 12 px tall image
    mask = torch.zeros(8, 8)
    mask[2:6, 2:6] = 1  # the box's cells: centres 11..17 in x, 5..11 in y
    torch.testing.assert_close(support[3], mask)
    torch.testing.assert_close(support[4, 0], torch.arange(10.5, 18.0, 1.0))  # the box alone
    with pytest.raises(SupportError, match="SUPPORT_CONTEXT=0.5"):
        support_input(image, box, ["image"], size=8, context=0.5)
    with pytest.raises(ValueError, match=r"SUPPORT_INPUT=\('mask',\)"):
        support_input(image, box, ["mask"], size=8, context=2.0)


@pytest.mark.parametrize("name", sorted(n for n, _ in FSRW_REWEIGHTER_REGISTRY))
def test_every_registered_reweighter_builds_runs_and_trains(name):
    cfg = load_config(CONFIG, ["MODEL.FSRW.REWEIGHTER", name,
                               "MODEL.FSRW.SUPPORT_INPUT", ["image", "mask", "object"]])
    backbone = build_backbone(cfg)
    module = build_reweighter(cfg, out_channels=16, backbone=backbone)
    supports = torch.randn(5, 7, 64, 64)
    vectors = module(supports)
    assert vectors.shape == (5, 16)
    vectors.square().sum().backward()
    assert all(p.grad is not None for p in module.parameters())


def test_backbone_reweighter_shares_the_detectors_backbone_and_starts_from_the_image():
    cfg = load_config(CONFIG, ["MODEL.FSRW.REWEIGHTER", "BackboneReweighter"])
    backbone = build_backbone(cfg)
    module = build_reweighter(cfg, out_channels=8, backbone=backbone)
    assert not any(name.startswith("_shared") for name, _ in module.named_parameters())
    supports = torch.randn(2, 4, 64, 64)  # image + mask
    level = max(backbone.output_shape(), key=lambda n: backbone.output_shape()[n].stride)
    expected = torch.amax(module.project(backbone(supports[:, :3])[level]), dim=(2, 3))
    torch.testing.assert_close(module(supports), expected)  # the mask starts ignored
    module(supports).sum().backward()
    assert any(p.grad is not None for p in backbone.parameters())
    with pytest.raises(ValueError, match="BackboneReweighter' shares the detector's backbone"):
        build_reweighter(cfg, out_channels=8)
    odd = load_config(CONFIG, ["MODEL.FSRW.REWEIGHTER", "BackboneReweighter",
                               "MODEL.FSRW.SUPPORT_SIZE", 40])
    with pytest.raises(ValueError, match="SUPPORT_SIZE=40: the backbone .* multiple of 32"):
        build_reweighter(odd, out_channels=8, backbone=backbone)


def test_light_reweighter_max_pools_its_last_convolution():
    cfg = load_config(CONFIG, ["MODEL.FSRW.REWEIGHTER_DIMS", []])
    module = build_reweighter(cfg, out_channels=2)
    with torch.no_grad():
        last = module.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.5, -1.0]))
        last.weight[0, 3, 1, 1] = 1.0  # vector[0] = max over the mask channel + 0.5
        last.weight[1, 0, 1, 1] = -1.0  # vector[1] = -min over the red channel - 1
    supports = torch.zeros(1, 4, 6, 6)
    supports[0, 3, 2, 2] = 2.0
    supports[0, 0] = torch.linspace(-3, 3, 36).view(6, 6)
    torch.testing.assert_close(module(supports), torch.tensor([[2.5, 2.0]]))


def test_features_sorted_by_variance_across_classes_and_tsne_keeps_the_means(tmp_path):
    vectors = np.array([[1.0, 0.0, 5.0], [1.0, 2.0, -5.0], [1.0, 4.0, 0.0]])
    ordered, order = sort_by_class_variance(vectors)
    assert order.tolist() == [2, 1, 0]  # variances 50/3, 8/3, 0
    np.testing.assert_array_equal(ordered, vectors[:, [2, 1, 0]])
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 6)
    per_shot = rng.normal(size=(18, 8)) + 10 * np.eye(3, 8)[labels]  # 3 separated clusters
    points, means = tsne_with_class_means(per_shot, labels, 3)
    assert points.shape == (18, 2) and means.shape == (3, 2)
    for c in range(3):  # each class mean lands nearer its own examples than the others'
        distances = [np.linalg.norm(points[labels == k] - means[c], axis=1).mean()
                     for k in range(3)]
        assert int(np.argmin(distances)) == c
    plot_class_vectors(vectors, ["a", "b", "c"], str(tmp_path / "vectors.png"), "vectors")
    plot_tsne(points, labels, means, ["a", "b", "c"], str(tmp_path / "tsne.png"), "t-SNE")
    assert (tmp_path / "vectors.png").stat().st_size > 0 and (tmp_path / "tsne.png").is_file()


def test_sigmoid_vectors_are_the_sigmoid_of_the_pooled_output_and_names_are_checked():
    plain = load_config(CONFIG, ["MODEL.FSRW.REWEIGHTER_DIMS", [8]])
    torch.manual_seed(0)
    module = build_reweighter(plain, out_channels=4)
    attention = build_reweighter(load_config(CONFIG, [
        "MODEL.FSRW.REWEIGHTER_DIMS", [8], "MODEL.FSRW.VECTOR_ACTIVATION", "sigmoid"]), 4)
    attention.load_state_dict(module.state_dict())
    supports = torch.randn(3, 4, 16, 16)
    torch.testing.assert_close(attention(supports), torch.sigmoid(module(supports)))
    with pytest.raises(ValueError, match="VECTOR_ACTIVATION='tanh': expected one of"):
        build_reweighter(load_config(CONFIG, ["MODEL.FSRW.VECTOR_ACTIVATION", "tanh"]), 4)


@pytest.mark.parametrize("name", sorted(n for n, _ in FSRW_REWEIGHTER_REGISTRY))
def test_identity_init_starts_every_class_vector_near_all_ones(name):
    """REWEIGHTER_INIT identity: the last layer's weights N(0, 0.01) and bias 1, so a vector is
    1 + a max over small terms (Eq. 6.1 starts as the identity); "he" gives vectors far from it;
    an unknown name is an error naming the key."""
    def vectors(init):
        torch.manual_seed(0)
        cfg = load_config(CONFIG, ["MODEL.FSRW.REWEIGHTER", name,
                                   "MODEL.FSRW.REWEIGHTER_INIT", init])
        module = build_reweighter(cfg, out_channels=64, backbone=build_backbone(cfg))
        torch.manual_seed(1)
        return module, module(torch.randn(6, 4, 64, 64)).detach()

    module, identity = vectors("identity")
    last = module.layers[-1] if name == "LightReweighter" else module.project
    torch.testing.assert_close(last.bias, torch.ones_like(last.bias))
    assert abs(float(last.weight.detach().std()) - 0.01) < 0.002
    assert float((identity - 1).abs().max()) < 0.5 and abs(float(identity.mean()) - 1) < 0.2
    _, he = vectors("he")
    assert float((he - 1).abs().mean()) > 3 * float((identity - 1).abs().mean())
    with pytest.raises(ValueError, match="REWEIGHTER_INIT='zeros': expected one of"):
        vectors("zeros")
