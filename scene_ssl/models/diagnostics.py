"""What the methods log at log steps to show what they learn: collapse, similarities, and
the quality of MLS's pseudo-labels.

All functions run without gradient and without host synchronisation; the loop reads the
0-d tensors they return only at log steps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["embedding_std", "contrast_stats", "pseudo_label_precision"]


@torch.no_grad()
def embedding_std(z: Tensor) -> Tensor:
    """Collapse monitor: the std over the batch of L2-normalised ``z`` (B, D), averaged over
    dimensions. About ``1/sqrt(D)`` for spread embeddings, 0 when all rows are the same.

    Example:
        >>> float(embedding_std(torch.ones(4, 8)))
        0.0
    """
    return F.normalize(z.float(), dim=1).std(dim=0).mean()


@torch.no_grad()
def contrast_stats(z_q: Tensor, z_k: Tensor, queue: Tensor) -> dict[str, Tensor]:
    """Diagnostics of a query / key / queue contrast (MoCo v2, MLS).

    Returns ``z_std`` (:func:`embedding_std` of the queries), ``z_norm`` (mean ‖z_q‖ before
    normalisation: a growing norm shrinks the step the normalised loss can take),
    ``sim_pos`` (mean cos(z_q, z_k)), ``sim_neg`` (mean cos of a query to a queue entry) and
    ``queue_mean_norm`` (‖mean of the queue's rows‖: 0 for spread unit vectors, 1 when they
    are all the same).

    Args:
        z_q: queries (B, D). z_k: their keys (B, D). queue: unit rows (K, D).
    """
    q = F.normalize(z_q.float(), dim=1)
    k = F.normalize(z_k.float(), dim=1)
    queue_mean = queue.float().mean(dim=0)  # (D,)
    return {
        "z_std": embedding_std(z_q),
        "z_norm": z_q.float().norm(dim=1).mean(),
        "sim_pos": (q * k).sum(dim=1).mean(),
        "sim_neg": q.mean(dim=0) @ queue_mean,  # mean over (b, i) of q_b·Q_i, without the (B, K) matrix
        "queue_mean_norm": queue_mean.norm(),
    }


@torch.no_grad()
def pseudo_label_precision(topk_rows: Tensor, query_labels: Tensor, queue_labels: Tensor,
                           queue_valid: Tensor) -> tuple[Tensor, Tensor]:
    """How often MLS's pseudo-positives share a real class with the query, and chance.

    ``precision``: over the queries that have a label, the mean fraction of their top-k
    queue entries that share at least one class with them. ``chance``: the same fraction
    over *all* valid queue entries, i.e. the precision of k entries drawn at random. Queue
    entries that are not valid (no index: the random initial rows) never share a class.
    Both are NaN when no query has a label.

    Args:
        topk_rows: (B, k) queue rows chosen as positives.
        query_labels: (B, C) multi-hot labels of the queries.
        queue_labels: (K, C) multi-hot labels of the queue rows.
        queue_valid: (K,) bool, rows that hold a known sample.

    Example:
        >>> qy = torch.tensor([[1, 0, 0], [0, 1, 0]])
        >>> Qy = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
        >>> p, c = pseudo_label_precision(torch.tensor([[0, 2], [1, 3]]), qy, Qy, torch.ones(4, dtype=torch.bool))
        >>> float(p), float(c)
        (0.75, 0.5)
    """
    shares = (query_labels.float() @ queue_labels.float().t() > 0) & queue_valid[None, :]  # (B, K)
    labeled = query_labels.sum(dim=1) > 0  # (B,)
    precision = shares.gather(1, topk_rows).float().mean(dim=1)  # (B,)
    chance = shares.float().sum(dim=1) / queue_valid.sum().clamp_min(1)  # (B,)
    n = labeled.sum()
    nan = torch.full((), float("nan"), device=precision.device)
    return (torch.where(n > 0, (precision * labeled).sum() / n.clamp_min(1), nan),
            torch.where(n > 0, (chance * labeled).sum() / n.clamp_min(1), nan))
