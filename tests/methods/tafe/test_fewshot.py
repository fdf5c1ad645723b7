"""Few-shot classification on cached features (dynnet_d2/methods/tafe/fewshot.py): exact,
seeded shots; each method's scores against a hand computation; the accuracies by hand."""
import pytest
import torch

from dynnet_d2.methods.tafe import fewshot


def toy():
    # classes 0, 1 base (3 images each), class 2 novel (4 images); 2-d features
    features = torch.tensor([[1.0, 0], [1.2, 0], [0.8, 0], [0, 1.0], [0, 1.2], [0, 0.8],
                             [-1.0, 0], [-1.1, 0], [-0.9, 0], [-1.0, 0.1]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    return features, labels


def test_shots_are_exactly_k_seeded_and_k_beyond_the_images_is_named():
    features, labels = toy()
    a = fewshot.draw_shots(labels, [2], 2, seed=3)
    assert a[2].tolist() == fewshot.draw_shots(labels, [2], 2, seed=3)[2].tolist()
    assert len(a[2]) == 2 and set(a[2].tolist()) <= {6, 7, 8, 9}
    assert any(fewshot.draw_shots(labels, [2], 2, seed=s)[2].tolist() != a[2].tolist()
               for s in range(4, 10))
    ep = fewshot.episode(features, labels, [2], 2, seed=3, num_classes=3)
    assert (ep.labels == 2).sum() == 2 and (ep.labels != 2).sum() == 6 and ep.base == [0, 1]
    with pytest.raises(ValueError, match="5 shots of class 2, which has 4 training images"):
        fewshot.draw_shots(labels, [2], 5, seed=0)


def test_prototypes_and_matching_by_hand():
    features, labels = toy()
    ep = fewshot.episode(features, labels, [2], 1, seed=0, num_classes=3)
    shot = ep.features[ep.labels == 2][0]
    test = torch.tensor([[0.5, 0.5]])
    means = torch.stack([torch.tensor([1.0, 0]), torch.tensor([0, 1.0]), shot])
    torch.testing.assert_close(fewshot.prototypes(ep, test),
                               -((test - means) ** 2).sum(1, keepdim=True).T)
    # K = 1: one support per class; attention = softmax of the cosines to the three supports
    scores = fewshot.matching(ep, test)
    supports = fewshot.Episode.supports(ep, 1, torch.Generator().manual_seed(0))[:, 0]
    cosines = torch.nn.functional.cosine_similarity(test, supports)
    torch.testing.assert_close(scores[0], cosines.softmax(0))
    assert scores.shape == (1, 3) and torch.isclose(scores.sum(), torch.tensor(1.0))


def test_accuracies_by_hand():
    scores = torch.tensor([[3.0, 0, 2], [0, 1, 2], [0, 3, 2], [2, 0, 1]])
    labels = torch.tensor([2, 2, 1, 0])
    acc = fewshot.accuracies(scores, labels, novel=[2])
    # novel images: rows 0 (predicted 0), 1 (predicted 2): 50 %; among novel only: 100 %
    assert acc == {"novel": 50.0, "novel_among_novel": 100.0, "base": 100.0, "all": 75.0}


@pytest.mark.parametrize("method", ["tafe", "logistic_regression"])
def test_trained_methods_score_every_class(method):
    features, labels = toy()
    features = features.repeat(3, 1) + 0.01 * torch.randn(30, 2, generator=torch.Generator()
                                                          .manual_seed(0))
    labels = labels.repeat(3)
    ep = fewshot.episode(features, labels, [2], 2, seed=0, num_classes=3)
    options = {"iterations": 200, "dims": (16, 16), "batch_size": 8} if method == "tafe" else {}
    scores = fewshot.FEWSHOT_METHODS[method](ep, features, **options)
    assert scores.shape == (30, 3) and torch.isfinite(scores).all()
    assert fewshot.accuracies(scores, labels, [2])["base"] > 90  # separable base classes
