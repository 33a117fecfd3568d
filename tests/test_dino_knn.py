"""knn_classifier against DINO's reference formula, a hand-computed case, tiny test sets, chunking, top-5 edge cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_dino.knn import knn_classifier, knn_evaluate


def reference_knn_classifier(train_features, train_labels, test_features, test_labels, k, T, num_classes=1000):
    """facebookresearch/dino eval_knn.knn_classifier (after the top-5 fix of dino#89), on normalised features."""
    top1, top5, total = 0.0, 0.0, 0
    train_features = train_features.t()
    num_test_images, num_chunks = test_labels.shape[0], 100
    imgs_per_chunk = num_test_images // num_chunks
    retrieval_one_hot = torch.zeros(k, num_classes).to(train_features.device)
    for idx in range(0, num_test_images, imgs_per_chunk):
        features = test_features[idx : min((idx + imgs_per_chunk), num_test_images), :]
        targets = test_labels[idx : min((idx + imgs_per_chunk), num_test_images)]
        batch_size = targets.shape[0]
        similarity = torch.mm(features, train_features)
        distances, indices = similarity.topk(k, largest=True, sorted=True)
        candidates = train_labels.view(1, -1).expand(batch_size, -1)
        retrieved_neighbors = torch.gather(candidates, 1, indices)
        retrieval_one_hot.resize_(batch_size * k, num_classes).zero_()
        retrieval_one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
        distances_transform = distances.clone().div_(T).exp_()
        probs = torch.sum(
            torch.mul(retrieval_one_hot.view(batch_size, -1, num_classes), distances_transform.view(batch_size, -1, 1)),
            1,
        )
        _, predictions = probs.sort(1, True)
        correct = predictions.eq(targets.data.view(-1, 1))
        top1 = top1 + correct.narrow(1, 0, 1).sum().item()
        top5 = top5 + correct.narrow(1, 0, min(5, k)).sum().item()
        total += targets.size(0)
    return top1 * 100.0 / total, top5 * 100.0 / total


def clustered_features(num: int, classes: int = 10, dim: int = 16, seed: int = 0):
    """Noisy samples around one centre per class, so k-NN is neither perfect nor chance."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(123))
    labels = torch.randint(0, classes, (num,), generator=generator)
    return centres[labels] + 1.5 * torch.randn(num, dim, generator=generator), labels


@pytest.mark.parametrize("k", [5, 10, 20, 50])
def test_same_results_as_the_reference_formula(k):
    train_x, train_y = clustered_features(600)
    test_x, test_y = clustered_features(300, seed=1)
    train_n, test_n = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    expected = reference_knn_classifier(train_n, train_y, test_n, test_y, k, 0.07, num_classes=10)
    top1, _ = knn_classifier(train_x, train_y, test_x, test_y, k, 0.07, 10)
    assert top1 == pytest.approx(expected[0])
    assert 20 < top1 < 100  # a meaningful case, not a trivial one
    # The reference ranks classes without votes in arbitrary order, so its top-5 is defined only for queries whose
    # neighbours vote for at least 5 classes; compare on those (the reference needs at least 100 of them).
    neighbours = (test_n @ train_n.t()).topk(k, dim=1).indices
    keep = torch.tensor([len(set(train_y[row].tolist())) >= 5 for row in neighbours])
    if k >= 20:
        assert keep.sum() >= 100
        subset = (test_x[keep], test_y[keep])
        expected5 = reference_knn_classifier(train_n, train_y, F.normalize(subset[0], dim=1), subset[1], k, 0.07, 10)
        assert knn_classifier(train_x, train_y, *subset, k, 0.07, 10) == pytest.approx(expected5)


def test_hand_computed_case():
    # Test sample [1, 0] of class 0. Neighbours: a [1, 0] class 0 (cosine 1), b [0.6, 0.8] and c [0.6, -0.8] class 1
    # (cosine 0.6 each), d [-1, 0] class 2 (cosine -1).
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    test, test_label = torch.tensor([[2.0, 0.0]]), torch.tensor([0])  # unnormalised on purpose
    assert knn_classifier(train, labels, test, test_label, 1, 1.0, 3) == (100.0, 100.0)
    # k = 3, T = 1: class 0 scores e^1 = 2.72, class 1 scores 2 e^0.6 = 3.64, so the vote goes to class 1.
    assert math.exp(1.0) < 2 * math.exp(0.6)
    assert knn_classifier(train, labels, test, test_label, 3, 1.0, 3) == (0.0, 100.0)
    # k = 3, T = 0.07: e^(1/0.07) outweighs 2 e^(0.6/0.07), so class 0 wins again.
    assert knn_classifier(train, labels, test, test_label, 3, 0.07, 3) == (100.0, 100.0)


def test_fewer_than_100_test_samples():
    train_x, train_y = clustered_features(200)
    test_x, test_y = clustered_features(7, seed=2)
    with pytest.raises(ValueError, match="must not be zero"):  # the reference's crash
        reference_knn_classifier(F.normalize(train_x, dim=1), train_y, F.normalize(test_x, dim=1), test_y, 20, 0.07)
    top1, top5 = knn_classifier(train_x, train_y, test_x, test_y, 20, 0.07, 10)
    assert top1 * 7 / 100 == pytest.approx(round(top1 * 7 / 100))  # a whole number of correct samples
    assert 0 <= top1 <= top5 <= 100


def test_chunk_size_does_not_change_the_result():
    train_x, train_y = clustered_features(300)
    test_x, test_y = clustered_features(97, seed=3)
    results = [
        knn_evaluate(train_x, train_y, test_x, test_y, [1, 10, 20], 0.07, 10, chunk_size=c) for c in (1, 13, 97, 4096)
    ]
    assert all(r == results[0] for r in results[1:])


def test_top5_with_k_below_5_counts_only_voted_classes():
    train_x, train_y = clustered_features(300)
    test_x, test_y = clustered_features(120, seed=4)
    top1, top5 = knn_classifier(train_x, train_y, test_x, test_y, 1, 0.07, 10)
    assert top5 == top1  # one neighbour votes for one class: top-5 cannot be better than top-1
    top1_2, top5_2 = knn_classifier(train_x, train_y, test_x, test_y, 2, 0.07, 10)
    assert top1_2 <= top5_2 < 100


def test_fewer_than_5_classes():
    train_x, train_y = clustered_features(200, classes=3)
    test_x, test_y = clustered_features(50, classes=3, seed=5)
    top1, top5 = knn_classifier(train_x, train_y, test_x, test_y, 200, 0.07, 3)
    assert top5 == 100.0 and top1 < 100.0  # every class gets a vote from 200 neighbours


def test_k_larger_than_the_bank_is_clipped_with_a_warning():
    train_x, train_y = clustered_features(30)
    test_x, test_y = clustered_features(20, seed=6)
    with pytest.warns(UserWarning, match="k=100 is larger than the bank of 30"):
        clipped = knn_classifier(train_x, train_y, test_x, test_y, 100, 0.07, 10)
    assert clipped == knn_classifier(train_x, train_y, test_x, test_y, 30, 0.07, 10)


def test_bad_input_names_the_problem():
    x, y = clustered_features(20)
    with pytest.raises(ValueError, match="same dim"):
        knn_classifier(x, y, x[:, :5], y, 5, 0.07, 10)
    with pytest.raises(ValueError, match="one label per feature row"):
        knn_classifier(x, y[:-1], x, y, 5, 0.07, 10)
    with pytest.raises(ValueError, match=r"lie in \[0, num_classes=3\)"):
        knn_classifier(x, y, x, y, 5, 0.07, 3)
    with pytest.raises(ValueError, match="at least one"):
        knn_classifier(x, y, x[:0], y[:0], 5, 0.07, 10)
