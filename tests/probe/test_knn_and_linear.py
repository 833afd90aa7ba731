import math

import pytest
import torch

from scene_ssl.probe import fit_linear_head, knn_scores


def test_knn_scores_match_a_naive_loop():
    torch.manual_seed(0)
    train, targets, query = torch.randn(30, 6), (torch.rand(30, 4) < 0.3).float(), torch.randn(5, 6)
    k, T = 7, 0.1
    got = knn_scores(train, targets, query, k=k, temperature=T, chunk=2)
    for q in range(5):
        sims = [(float(torch.nn.functional.cosine_similarity(query[q], train[j], dim=0)), j) for j in range(30)]
        nn = sorted(sims, reverse=True)[:k]
        weights = [math.exp(s / T) for s, _ in nn]
        expected = sum(w * targets[j] for w, (_, j) in zip(weights, nn)) / sum(weights)
        assert torch.allclose(got[q], expected, atol=1e-5)


def test_knn_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        knn_scores(torch.randn(3, 2), torch.ones(3, 1), torch.randn(1, 2), k=4)


def test_linear_head_learns_a_separable_problem():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = torch.stack([(x[:, 0] > 0), (x[:, 1] + x[:, 2] > 0)], dim=1).float()
    head = fit_linear_head(x, y, epochs=30, batch_size=32)
    acc = ((head(x) > 0).float() == y).float().mean()
    assert acc > 0.95
    assert head.weight.shape == (2, 8)


def test_a_probe_over_a_folder_with_a_corrupt_image_reports_it(tmp_path):
    import warnings

    import numpy as np
    from PIL import Image

    from scene_ssl.data import load_dataset
    from scene_ssl.models import TimmBackbone
    from scene_ssl.probe import extract_features

    for c in ("cats", "dogs"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(tmp_path / c / f"{i}.jpg")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    data = load_dataset(f"folder:{tmp_path}", "train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats, targets = extract_features(TimmBackbone("test_resnet"), data, image_size=32, num_workers=0, batch_size=4)
    said = [str(w.message) for w in caught]
    assert feats.shape[0] == targets.shape[0] == 6  # the broken one is left out
    assert sum("broken.jpg" in s and s.startswith("skipping unreadable image") for s in said) == 1  # named once
    assert any("1 unreadable image(s) left out of the probe set of 7" in s for s in said)  # and counted


def test_ignored_labels_leave_the_linear_head_alone():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, :2] > 0).float()
    marked = y.clone()
    marked[:32, 1] = -1  # half of class 1's labels are ignored (VOC's difficult-only)
    head = fit_linear_head(x, marked, epochs=5, batch_size=16, seed=1)
    assert torch.isfinite(head.weight).all()
    scores = knn_scores(x, marked, x[:4], k=8)
    assert (scores >= 0).all()  # an ignored label votes nothing, never negative
