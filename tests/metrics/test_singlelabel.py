import pytest
import torch

from scene_ssl.metrics import mean_per_class_accuracy, singlelabel_metrics


def _naive_mean_per_class(scores, labels):
    per_class = {}
    for s, y in zip(scores.tolist(), labels.tolist()):
        hit = max(range(len(s)), key=lambda c: s[c]) == y
        per_class.setdefault(y, []).append(hit)
    return 100.0 * sum(sum(v) / len(v) for v in per_class.values()) / len(per_class)


@pytest.mark.parametrize("seed", range(5))
def test_mean_per_class_accuracy_matches_a_naive_loop(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(200, 7, generator=g)
    labels = torch.randint(0, 6, (200,), generator=g)  # class 6 never occurs: not averaged in
    assert mean_per_class_accuracy(scores, labels) == pytest.approx(_naive_mean_per_class(scores, labels))


def test_imbalance_separates_it_from_top1():
    scores = torch.tensor([[1.0, 0.0]] * 9 + [[1.0, 0.0]])  # always class 0
    labels = torch.tensor([0] * 9 + [1])
    m = singlelabel_metrics(scores, labels)
    assert m["top1"] == pytest.approx(90.0) and m["mean_per_class"] == pytest.approx(50.0)
