import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from scene_ssl.metrics import average_precision, multilabel_metrics, topk_accuracy


@pytest.mark.parametrize("seed", range(4))
def test_ap_equals_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(60, 7))
    targets = (rng.random((60, 7)) < 0.3).astype(float)
    targets[0] = 1  # every class has a positive
    ours = average_precision(torch.tensor(scores), torch.tensor(targets)).numpy()
    for c in range(7):
        assert ours[c] == pytest.approx(average_precision_score(targets[:, c], scores[:, c]), abs=1e-12)


def test_ap_with_ties_equals_sklearn():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 5)).astype(float)  # heavy ties
    targets = (rng.random((50, 5)) < 0.4).astype(float)
    targets[0] = 1
    ours = average_precision(torch.tensor(scores), torch.tensor(targets)).numpy()
    for c in range(5):
        assert ours[c] == pytest.approx(average_precision_score(targets[:, c], scores[:, c]), abs=1e-12)


def test_class_without_positives_is_left_out_of_map():
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.7, 0.6, 0.5]])
    targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    m = multilabel_metrics(scores, targets)
    assert math.isnan(m["per_class_AP"][2])
    assert m["mAP"] == pytest.approx(100 * (1.0 + 1.0) / 2)


def test_hand_computed_precision_recall():
    # logits; predicted = sigmoid >= 0.5 <=> logit >= 0
    scores = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    targets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]])
    # class 0: pred {0,1}, gt {0,1} -> P 1, R 1; class 1: pred {0,2}, gt {1,2} -> P 1/2, R 1/2;
    # class 2: pred {1,2}, gt {2,3} -> P 1/2, R 1/2. Overall: TP 4, predicted 6, gt 6.
    m = multilabel_metrics(scores, targets)
    cp, cr = (1 + 0.5 + 0.5) / 3, (1 + 0.5 + 0.5) / 3
    assert m["CP"] == pytest.approx(100 * cp) and m["CR"] == pytest.approx(100 * cr)
    assert m["CF1"] == pytest.approx(100 * 2 * cp * cr / (cp + cr))
    assert m["OP"] == pytest.approx(100 * 4 / 6) and m["OR"] == pytest.approx(100 * 4 / 6)
    assert m["OF1"] == pytest.approx(100 * 4 / 6)


def test_all_zero_predictions():
    targets = torch.tensor([[1, 0], [0, 1], [1, 1]])
    m = multilabel_metrics(torch.full((3, 2), -5.0), targets)
    assert (m["CP"], m["CR"], m["CF1"], m["OP"], m["OR"], m["OF1"]) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_logit_threshold_for_parity_with_the_authors():
    scores = torch.tensor([[0.55, 0.65], [0.7, 0.1]])
    targets = torch.tensor([[1, 1], [1, 0]])
    sig = multilabel_metrics(scores, targets)  # sigmoid(0.1) > 0.5: everything predicted
    raw = multilabel_metrics(scores, targets, threshold=0.6, apply_sigmoid=False)
    assert sig["OP"] == pytest.approx(100 * 3 / 4)
    assert raw["OP"] == pytest.approx(100.0) and raw["OR"] == pytest.approx(100 * 2 / 3)


def test_top3_variant():
    scores = torch.tensor([[5.0, 4.0, 3.0, -9.0], [0.1, 0.2, 0.3, 0.4]])
    targets = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 1]])
    m = multilabel_metrics(scores, targets, top_k=3)
    # row 0 predicts {0,1,2} (TP 1), row 1 predicts {1,2,3} (TP 2): OP 3/6, OR 3/4
    assert m["OP"] == pytest.approx(50.0) and m["OR"] == pytest.approx(75.0)


def test_top3_with_the_logit_threshold_matches_the_authors_overall_topk():
    scores = torch.tensor([[5.0, 4.0, 0.5, -9.0], [0.1, 0.2, 0.7, 0.9], [0.61, 0.59, -1.0, 0.65]])
    targets = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]])
    m = multilabel_metrics(scores, targets, top_k=3, top_k_threshold=True, threshold=0.6, apply_sigmoid=False)
    # top-3 that also reach 0.6: row 0 {0, 1} (2.0 >= 0.6 dropped 0.5), row 1 {2, 3}, row 2 {0, 3}
    # per class: TP (2, 0, 1, 1), predicted (2, 1, 1, 2), positives (2, 1, 2, 2)
    assert m["OP"] == pytest.approx(100 * 4 / 6) and m["OR"] == pytest.approx(100 * 4 / 7)
    assert m["CP"] == pytest.approx(100 * (1 + 0 + 1 + 1 / 2) / 4)
    assert m["CR"] == pytest.approx(100 * (1 + 0 + 1 / 2 + 1 / 2) / 4)
    plain = multilabel_metrics(scores, targets, top_k=3)  # the threshold is ignored without the switch
    assert plain["OP"] == pytest.approx(100 * 6 / 9)


def test_topk_accuracy():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.3, 0.2, 0.5], [0.9, 0.04, 0.06]])
    labels = torch.tensor([2, 2, 1])
    assert topk_accuracy(scores, labels, 1) == pytest.approx(100 / 3)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(200 / 3)


def test_bad_input():
    with pytest.raises(ValueError, match="same shape|both be"):
        multilabel_metrics(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="0 / 1"):
        multilabel_metrics(torch.zeros(2, 2), torch.full((2, 2), 2))
