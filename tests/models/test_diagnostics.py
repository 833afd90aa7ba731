import pytest
import torch
import torch.nn.functional as F

from scene_ssl.models import MLS, MoCoV2
from scene_ssl.models.diagnostics import contrast_stats, embedding_std, pseudo_label_precision

TINY = "test_resnet"


def test_collapse_monitor_is_zero_for_identical_embeddings_and_near_one_over_sqrt_d_when_spread():
    assert float(embedding_std(torch.randn(1, 32).repeat(50, 1))) == pytest.approx(0.0, abs=1e-6)
    spread = float(embedding_std(torch.randn(4000, 64)))
    assert spread == pytest.approx(1 / 64 ** 0.5, rel=0.05)


def test_contrast_stats_against_the_naive_loops():
    z_q, z_k = torch.randn(6, 8), torch.randn(6, 8)
    queue = F.normalize(torch.randn(10, 8), dim=1)
    s = contrast_stats(z_q, z_k, queue)
    q, k = F.normalize(z_q, dim=1), F.normalize(z_k, dim=1)
    assert float(s["sim_pos"]) == pytest.approx(sum(float(q[i] @ k[i]) for i in range(6)) / 6, abs=1e-6)
    assert float(s["sim_neg"]) == pytest.approx(sum(float(q[i] @ queue[j]) for i in range(6) for j in range(10)) / 60, abs=1e-6)
    assert float(s["z_norm"]) == pytest.approx(float(z_q.norm(dim=1).mean()), abs=1e-6)
    assert float(s["queue_mean_norm"]) == pytest.approx(float(queue.mean(0).norm()), abs=1e-6)
    same = contrast_stats(z_q, z_k, queue[:1].repeat(10, 1))
    assert float(same["queue_mean_norm"]) == pytest.approx(1.0, abs=1e-6)


def _labels(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_pseudo_label_precision_one_when_every_positive_shares_a_class_zero_when_none():
    queue_labels = _labels([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]])
    valid = torch.ones(4, dtype=torch.bool)
    queries = _labels([[1, 0, 0], [0, 0, 1]])
    p, c = pseudo_label_precision(torch.tensor([[0, 1], [2, 2]]), queries, queue_labels, valid)
    assert float(p) == 1.0
    assert float(c) == pytest.approx((2 / 4 + 1 / 4) / 2)  # class 0 is in 2 of 4 rows, class 2 in 1 of 4
    p, _ = pseudo_label_precision(torch.tensor([[2, 3], [0, 1]]), queries, queue_labels, valid)
    assert float(p) == 0.0


def test_pseudo_label_precision_ignores_unlabeled_queries_and_counts_unknown_rows_as_misses():
    queue_labels = _labels([[1, 0], [1, 0], [1, 0]])
    valid = torch.tensor([True, True, False])  # row 2 is an initial random vector
    queries = _labels([[1, 0], [0, 0]])  # the second query has no label: left out of both numbers
    p, c = pseudo_label_precision(torch.tensor([[0, 2], [0, 1]]), queries, queue_labels, valid)
    assert float(p) == 0.5 and float(c) == 1.0
    p, c = pseudo_label_precision(torch.tensor([[0, 1]]), _labels([[0, 0]]), queue_labels, valid)
    assert torch.isnan(p) and torch.isnan(c)


def test_mls_diagnostics_match_a_hand_built_queue():
    torch.manual_seed(0)
    model = MLS(TINY, dim=8, hidden_dim=16, queue_size=6, topk=2).train()
    table = torch.eye(3)[[0, 0, 1, 1, 2, 2, 0, 1]]  # 8 images, classes 0 0 1 1 2 2 0 1
    with torch.no_grad():  # queue row r holds image r with Q_g row r = e_r (so top-k is known)
        model.queue_g.features.copy_(torch.eye(6, model.encoder.num_features))
        model.queue.index.copy_(torch.arange(6))
    x = torch.randn(2, 3, 32, 32)

    def fake_encoder(images):  # query 0 is most like rows 0 and 1 (class 0), query 1 like rows 4 and 5 (class 2)
        g = torch.zeros(images.shape[0], model.encoder.num_features)
        g[0, :2] = 1.0
        g[1, 4:6] = 1.0
        return g

    model.encoder.forward = fake_encoder
    out = model({"views": [x, x], "index": torch.tensor([6, 5]), "diagnostics": True, "label_table": table})
    # query 0 is image 6 (class 0): rows 0, 1 share it; query 1 is image 5 (class 2): rows 4, 5 share it
    assert float(out["pl_precision"]) == 1.0
    assert float(out["pl_chance"]) == pytest.approx((2 / 6 + 2 / 6) / 2)


def test_diagnostics_only_when_asked():
    model = MoCoV2(TINY, dim=8, hidden_dim=16, queue_size=16)
    x = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]
    assert sorted(model({"views": x})) == ["loss", "loss_nce"]
    out = model({"views": x, "diagnostics": True})
    assert {"z_std", "z_norm", "sim_pos", "sim_neg", "queue_mean_norm"} <= set(out)
    assert all(not v.requires_grad for k, v in out.items() if k != "loss")
