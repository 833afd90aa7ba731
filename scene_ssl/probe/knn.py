"""k-NN classification on frozen features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["knn_scores"]


@torch.no_grad()
def knn_scores(train_feats: Tensor, train_targets: Tensor, query_feats: Tensor, k: int = 20,
               temperature: float = 0.07, chunk: int = 1024) -> Tensor:
    """Similarity-weighted label vote of the k nearest training samples (cosine).

    ``score_c(q) = Σ_{j ∈ kNN(q)} w_j y_jc / Σ_j w_j`` with ``w_j = exp(cos(q, x_j) / T)``.
    For multi-hot targets the scores rank labels (mAP); for one-hot targets their argmax is
    the prediction (top-1). An ignored training label (-1, VOC's difficult-only) votes 0.

    Example:
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> labels = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> knn_scores(train, labels, torch.tensor([[1.0, 0.05]]), k=2).argmax(1).tolist()
        [0]
    """
    if not 1 <= k <= train_feats.shape[0]:
        raise ValueError(f"k must be in [1, {train_feats.shape[0]}], got {k}")
    train = F.normalize(train_feats.float(), dim=1)
    targets = train_targets.float().clamp_min(0)
    out = []
    for start in range(0, query_feats.shape[0], chunk):
        q = F.normalize(query_feats[start : start + chunk].float(), dim=1)
        sim, idx = (q @ train.t()).topk(k, dim=1)  # (Q, k)
        w = torch.softmax(sim / temperature, dim=1)  # normalised exp(cos / T)
        out.append(torch.einsum("qk,qkc->qc", w, targets[idx]))
    return torch.cat(out)
