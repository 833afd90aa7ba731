"""DenseCL's dense loss and its location matching, against naive per-location references."""
import pytest
import torch
import torch.nn.functional as F

from scene_ssl.losses import DenseContrastiveLoss, dense_correspondence


def test_correspondence_of_a_mirrored_map_is_the_mirrored_location():
    torch.manual_seed(0)
    q = torch.randn(2, 16, 3, 5)  # (B, C, H, W)
    k = q.flip(-1)  # the key view is the query view mirrored left to right
    match = dense_correspondence(q.flatten(2), k.flatten(2))  # (B, H*W)
    rows, cols = torch.meshgrid(torch.arange(3), torch.arange(5), indexing="ij")
    expected = (rows * 5 + (4 - cols)).flatten()  # (r, c) lies at (r, W - 1 - c) in the key map
    assert torch.equal(match, expected.expand(2, -1))
    # scaling a key feature changes no cosine: the same match
    assert torch.equal(dense_correspondence(q.flatten(2), 3.0 * k.flatten(2)), match)
    with pytest.raises(ValueError, match="dense_correspondence"):
        dense_correspondence(q, k)


def test_dense_loss_equals_a_naive_per_location_reference():
    torch.manual_seed(0)
    b, d, c, n = 2, 6, 10, 5
    q_grid, k_grid = torch.randn(b, d, n, requires_grad=True), torch.randn(b, d, n)
    q_map, k_map, queue = torch.randn(b, c, n), torch.randn(b, c, n), torch.randn(7, d)
    loss = DenseContrastiveLoss(0.3)(q_grid, k_grid, q_map, k_map, queue)
    terms = []
    for i in range(b):
        for j in range(n):
            cos = [F.cosine_similarity(q_map[i, :, j], k_map[i, :, m], dim=0).item() for m in range(n)]
            best = max(range(n), key=cos.__getitem__)
            qv, kv = F.normalize(q_grid[i, :, j], dim=0), F.normalize(k_grid[i, :, best], dim=0)
            logits = torch.cat([(qv @ kv).view(1), F.normalize(queue, dim=1) @ qv]) / 0.3
            terms.append(-torch.log_softmax(logits, dim=0)[0])
    assert float(loss.detach()) == pytest.approx(float(torch.stack(terms).mean().detach()), rel=1e-5)
    loss.backward()
    assert q_grid.grad.abs().sum() > 0  # the query embeddings learn; the maps only match locations
    with pytest.raises(ValueError, match="temperature"):
        DenseContrastiveLoss(0.0)
