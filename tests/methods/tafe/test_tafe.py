"""TAFE-Net (thesis ch. 5): the factorised layer against the explicit per-task weight W_s
diag(W_t) (forward and gradient, all tasks at once), the embedding loss and the calibrated
classification loss against hand computations, unseen tasks kept out of training, the head on
ImageClassifier with the shipped config, and the named errors of the task descriptions."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from dynnet_d2.config import load_config
from dynnet_d2.methods.tafe import TAFEHead, embedding_loss, factorized_linear, read_descriptions

CONFIG = "configs/TAFE/tafe_R8cifar_1000it_digits.yaml"


def test_factorized_layer_equals_the_explicit_per_task_weight_forward_and_gradient():
    torch.manual_seed(0)
    x = torch.randn(4, 5, requires_grad=True)
    shared = torch.randn(5, 3, requires_grad=True)
    vectors = torch.randn(6, 3, requires_grad=True)
    bias = torch.randn(3, requires_grad=True)
    out = factorized_linear(x, shared, vectors, bias)
    explicit = torch.stack([x @ (shared @ torch.diag(w)) + bias for w in vectors], dim=1)
    assert out.shape == (4, 6, 3)
    torch.testing.assert_close(out, explicit)
    grads = torch.autograd.grad(out.sin().sum(), (x, shared, vectors, bias))
    expected = torch.autograd.grad(explicit.sin().sum(), (x, shared, vectors, bias))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)
    # a second layer reads each task's own features (B, T, m)
    per_task = torch.randn(4, 6, 3)
    second = factorized_linear(per_task, shared.T.detach(), torch.ones(6, 5))
    torch.testing.assert_close(second[:, 2], per_task[:, 2] @ shared.T.detach())
    with pytest.raises(ValueError, match="do not fit"):
        factorized_linear(torch.randn(4, 2, 5), shared, vectors)


def test_embedding_loss_against_a_hand_computation():
    tafe = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],
                         [[1.0, 1.0], [-1.0, 0.0]]])  # (B=2, T=2, d=2)
    task_embedding = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1])
    # cosines: image 0: task 0 -> 1, task 1 -> 1/sqrt2; image 1: task 0 -> 1/sqrt2,
    # task 1 -> -1/sqrt2 (hinged to 0)
    c = 1 / math.sqrt(2)
    expected = ((1 - 1) ** 2 + (c - 0) ** 2 + (c - 0) ** 2 + (0 - 1) ** 2) / 4
    assert embedding_loss(tafe, task_embedding, labels).item() == pytest.approx(expected)


def _head(seen=None, beta=0.1):
    torch.manual_seed(0)
    return TAFEHead(in_channels=5, descriptions=torch.randn(4, 3), seen=seen,
                    embedding_dims=(6, 7), feature_dims=(8, 9), beta=beta)


def test_head_scores_every_task_with_its_generated_weights():
    head = _head().eval()
    features = torch.randn(2, 5)
    logits = head(features)
    assert logits.shape == (2, 4)
    _, vectors = head.meta_learner(head.descriptions)
    for t in range(4):
        x = features
        for layer, w in zip(head.layers, vectors):
            x = torch.relu(x @ (layer.shared @ torch.diag(w[t])) + layer.bias)
        torch.testing.assert_close(logits[:, t], head.classifier(x)[:, 0])


def test_unseen_tasks_never_reach_training():
    head = _head(seen=torch.tensor([True, False, True, True])).train()
    features = torch.randn(3, 5)
    logits = head(features)
    assert torch.isinf(logits[:, 1]).all() and torch.isfinite(logits[:, [0, 2, 3]]).all()
    labels = torch.tensor([0, 3, 2])
    # task 1's description reaches no loss
    descriptions = head.descriptions.clone().requires_grad_(True)
    head.descriptions = descriptions
    logits = head(features)
    (F.cross_entropy(logits, labels) + head.losses(labels)["loss_emb"]).backward()
    assert descriptions.grad[1].abs().sum() == 0 and descriptions.grad[0].abs().sum() > 0
    tafe, task_embedding = head.embeddings(features)
    expected = 0.1 * embedding_loss(tafe[:, [0, 2, 3]], task_embedding[[0, 2, 3]],
                                    torch.tensor([0, 2, 1]))
    head(features)
    torch.testing.assert_close(head.losses(labels)["loss_emb"], expected)
    assert torch.isfinite(head.eval()(features)).all()  # evaluation scores every task


def test_classifier_loss_is_the_calibrated_loss_of_eq_5_6_plus_the_embedding_loss():
    cfg = load_config(CONFIG)
    model = build_model(cfg).train()
    images = [{"image": torch.rand(1, 8, 8) * 255, "label": label} for label in (3, 7)]
    with EventStorage():
        losses = model(images)
    assert set(losses) == {"loss_cls", "loss_emb"}
    logits = model.logits(model.preprocess(images))
    # Eq. 5.6 with one-hot y: -1/N sum_i log(exp(F(x_i; theta_{y_i})) / sum_j exp(F(x_i; theta_j)))
    hand = -sum(logits[i, y] - torch.logsumexp(logits[i], 0) for i, y in enumerate((3, 7))) / 2
    torch.testing.assert_close(losses["loss_cls"], hand)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.head.meta_learner.parameters())
    table = json.loads(open(cfg.MODEL.TAFE.DESCRIPTIONS).read())
    names = MetadataCatalog.get("digits_train").thing_classes
    torch.testing.assert_close(model.head.descriptions, torch.tensor([table[c] for c in names],
                                                                     dtype=torch.float32))


def test_description_errors_name_the_file_and_class(tmp_path):
    path = tmp_path / "d.json"
    with pytest.raises(FileNotFoundError, match="MODEL.TAFE.DESCRIPTIONS=.*d.json"):
        read_descriptions(str(path), ["a"])
    path.write_text(json.dumps({"a": [1, 2], "b": [1, 2, 3]}))
    with pytest.raises(ValueError, match=r"d.json: no task description for class\(es\) \['c'\]"):
        read_descriptions(str(path), ["a", "c"])
    with pytest.raises(ValueError, match=r"descriptions of length \{'b': 3\}; expected 2"):
        read_descriptions(str(path), ["a", "b"])
    with pytest.raises(ValueError, match="MODEL.TAFE.BETA=-1"):
        _head(beta=-1)


@pytest.mark.parametrize("split", [1, 2])
def test_zero_shot_views_never_train_on_unseen_classes(split):
    from detectron2.data import DatasetCatalog
    train, test = f"shapes_zsl{split}_train", f"shapes_zsl{split}_test"
    meta = MetadataCatalog.get(train)
    classes = list(meta.thing_classes)
    unseen = {classes.index(c) for c in meta.unseen_classes}
    assert len(unseen) == 5 and not set(meta.seen_classes) & set(meta.unseen_classes)
    every_train_crop = [r["label"] for r in DatasetCatalog.get("shapes_cls_train")]
    train_labels = [r["label"] for r in DatasetCatalog.get(train)]
    assert train_labels == [y for y in every_train_crop if y not in unseen]
    assert set(every_train_crop) & unseen  # there were unseen crops to leave out
    for split_name in ("val", "test"):
        assert [r["label"] for r in DatasetCatalog.get(f"shapes_zsl{split}_{split_name}")] == [
            r["label"] for r in DatasetCatalog.get(f"shapes_cls_{split_name}")]
    assert MetadataCatalog.get(test).thing_classes == classes


def test_every_shape_has_a_distinct_attribute_description():
    classes = MetadataCatalog.get("shapes_zsl1_train").thing_classes
    descriptions = read_descriptions("configs/TAFE/shapes_attributes.json", classes)
    assert descriptions.shape == (20, 14)
    assert len({tuple(row.tolist()) for row in descriptions}) == 20


def test_bilinear_baseline_scores_x_w_t_and_masks_unseen_tasks_in_training():
    from dynnet_d2.methods.tafe import AttributeBilinearHead
    descriptions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    head = AttributeBilinearHead(in_channels=3, descriptions=descriptions,
                                 seen=torch.tensor([True, True, False]))
    with torch.no_grad():
        head.bilinear.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]))  # W^T
    x = torch.tensor([[1.0, 2.0, 3.0]])
    # x W = (1 + 6, 2) = (7, 2); scores against (1, 0), (0, 1), (1, 1): 7, 2, 9
    torch.testing.assert_close(head.eval()(x), torch.tensor([[7.0, 2.0, 9.0]]))
    assert head.train()(x)[0, 2] == float("-inf")


@pytest.mark.parametrize("config", ["tafe_MobileNetV2_6000it_shapeszsl.yaml",
                                    "bilinear_MobileNetV2_6000it_shapeszsl.yaml"])
def test_zero_shot_configs_build_with_the_thesis_optimizer(config):
    from dynnet_d2.engine.trainer import build_optimizer, trainer_class

    cfg = load_config(f"configs/TAFE/{config}", ["FEWSHOT.SPLIT", 2, "MODEL.DEVICE", "cpu"])
    assert cfg.DATASETS.TRAIN == ("shapes_zsl2_train",)
    assert trainer_class(cfg).__name__ == "PooledFeatureTrainer"
    model = trainer_class(cfg).build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.Adam)
    lr = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            slow = name.startswith("head.meta_learner.embedding.")
            assert lr[id(parameter)] == pytest.approx(1e-5 if slow else 1e-4), name


@pytest.mark.parametrize("attribute", ["color", "texture"])
def test_pair_views_label_each_crop_by_its_pair_and_never_train_unseen_pairs(attribute):
    from detectron2.data import DatasetCatalog

    from dynnet_d2.data.synthetic.categories import ALL_CLASSES
    meta = MetadataCatalog.get(f"shapes_pairs_{attribute}_train")
    classes, unseen = meta.thing_classes, set(meta.unseen_classes)
    assert len(classes) == len(meta.attribute_values) * 20 and len(unseen) == len(classes) // 4
    assert set(meta.seen_classes) == set(classes) - unseen
    train = DatasetCatalog.get(f"shapes_pairs_{attribute}_train")
    assert train and not {classes[r["label"]] for r in train} & unseen
    expected = [f"{a['attributes'][attribute]} {ALL_CLASSES[a['category_id']]}"
                for image in DatasetCatalog.get("shapes_test") for a in image["annotations"]
                if not a.get("iscrowd", 0)]
    test = DatasetCatalog.get(f"shapes_pairs_{attribute}_test")
    assert [classes[r["label"]] for r in test] == expected
    assert {classes[r["label"]] for r in test} & unseen  # unseen pairs to test on
    value, shape = meta.pair_components[len(classes) - 1]
    one_hot = [0.0] * (len(meta.attribute_values) + 20)
    one_hot[value] = one_hot[len(meta.attribute_values) + shape] = 1.0
    assert meta.class_descriptions[classes[-1]] == one_hot
    assert classes[-1] == f"{meta.attribute_values[value]} {ALL_CLASSES[shape]}"


def test_an_unseen_class_in_the_training_set_is_refused():
    from dynnet_d2.data.catalog import register
    from dynnet_d2.methods.tafe.head import check_unseen_never_train
    register("tafe_toy_leak", lambda: [{"label": 0}, {"label": 1}], thing_classes=["a", "b"],
             seen_classes=["a"], unseen_classes=["b"], evaluator_type="classification")
    with pytest.raises(ValueError, match=r"'tafe_toy_leak' has images of \['b'\].*unseen"):
        check_unseen_never_train("tafe_toy_leak")


def test_visual_product_scores_the_product_and_trains_its_two_classifiers():
    from dynnet_d2.methods.tafe import VisualProductHead
    components = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    head = VisualProductHead(in_channels=2, descriptions=torch.eye(4),
                             seen=torch.tensor([True, True, True, False]), components=components)
    with torch.no_grad():
        head.value_classifier.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.value_classifier.bias.zero_()
        head.object_classifier.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
        head.object_classifier.bias.zero_()
    x = torch.tensor([[1.0, 0.0]])
    # p(value) = softmax(1, 0), p(object) = softmax(2, 0)
    pv, po = F.softmax(torch.tensor([1.0, 0.0]), 0), F.softmax(torch.tensor([2.0, 0.0]), 0)
    product = torch.stack([pv[0] * po[0], pv[0] * po[1], pv[1] * po[0], pv[1] * po[1]])
    torch.testing.assert_close(head.eval()(x).exp()[0], product)
    logits = head.train()(x)
    assert logits[0, 3] == float("-inf")
    losses = head.losses(torch.tensor([2]))  # pair (1, 0)
    torch.testing.assert_close(losses["loss_value"], -pv[1].log())
    torch.testing.assert_close(losses["loss_object"], -po[0].log())


@pytest.mark.parametrize("head", ["tafe", "bilinear", "visualproduct"])
def test_pair_heads_build_from_their_configs_forward_and_backward(head):
    cfg = load_config(f"configs/TAFE/{head}_MobileNetV2_6000it_shapestexturepairs.yaml",
                      ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    assert model.head.out_features == 120
    torch.manual_seed(0)
    seen = torch.nonzero(model.head.seen)[:, 0].tolist()
    batch = [{"features": torch.randn(320), "label": label} for label in seen[:3]]
    model.train()
    with EventStorage():
        losses = model(batch)
    expected = {"loss_value", "loss_object"} if head == "visualproduct" else {"loss_cls"}
    assert expected <= set(losses) and (head == "visualproduct") != ("loss_cls" in losses)
    sum(losses.values()).backward()
    trained = [p for p in model.head.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained
                           if p.dim() > 1)
    model.eval()
    with torch.no_grad():
        scores = model(batch)[0]["scores"]
    assert scores.shape == (120,) and torch.isfinite(scores).all()
