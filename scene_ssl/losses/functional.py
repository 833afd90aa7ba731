"""Functional forms of the scene_ssl losses.

Every function computes in float32 whatever the input dtype: bf16 / fp16 logits divided
by a temperature of 0.07-0.3 and pushed through ``exp`` lose most of their mantissa, and
the MLS / IA-CLoss sums over thousands of queue entries amplify that error. Autocast is
switched off inside so that a caller running under ``torch.autocast`` still gets float32
matmuls here. Nothing is detached: stop-gradient is the caller's decision.

Shapes follow the papers' symbols: ``B`` batch, ``K`` queue size, ``D`` feature dim,
``N`` number of views.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "info_nce",
    "mls_pseudo_labels",
    "mls_topk",
    "mls_bce",
    "knn_softmax",
    "negative_cosine",
    "image_aware_contrastive",
]


@contextmanager
def _float32(*tensors: Tensor):
    """Disable autocast for the tensors' device type (float32 loss math)."""
    device_type = tensors[0].device.type if tensors else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def _check_2d(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (rows, dim), got shape {tuple(x.shape)}")


def _check_same_dim(a_name: str, a: Tensor, b_name: str, b: Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{a_name} has feature dim {a.shape[1]} but {b_name} has {b.shape[1]}; they must match"
        )


def _check_same_rows(a_name: str, a: Tensor, b_name: str, b: Tensor) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{a_name} has {a.shape[0]} rows but {b_name} has {b.shape[0]}; they must match")


def info_nce(q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.2) -> Tensor:
    """MoCo InfoNCE: logits ``[q·k, q·queueᵀ] / T``, cross-entropy with target 0.

    Args:
        q: queries (B, D). k: positive keys (B, D). queue: negative keys (K, D).
        All three are L2-normalised here.
    """
    for name, x in (("q", q), ("k", k), ("queue", queue)):
        _check_2d(name, x)
    _check_same_rows("q", q, "k", k)
    _check_same_dim("q", q, "k", k)
    _check_same_dim("q", q, "queue", queue)
    with _float32(q):
        q = F.normalize(q.float(), dim=1)
        k = F.normalize(k.float(), dim=1)
        queue = F.normalize(queue.float(), dim=1)
        l_pos = (q * k).sum(dim=1, keepdim=True)  # (B, 1)
        l_neg = q @ queue.t()  # (B, K)
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (B, 1 + K)
        target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, target)


@torch.no_grad()
def mls_topk(g_q: Tensor, queue_g: Tensor, k: int) -> Tensor:
    """Rows of the queue chosen as positives: ``topk(ĝ_q · Q̂_gᵀ, k)`` indices (B, k), no gradient.

    Example:
        >>> g = torch.tensor([[1.0, 0.0]])
        >>> Q = torch.tensor([[1.0, 0.1], [0.0, 1.0], [0.9, 0.0], [-1.0, 0.0]])
        >>> sorted(mls_topk(g, Q, k=2).tolist()[0])
        [0, 2]
    """
    _check_2d("g_q", g_q)
    _check_2d("queue_g", queue_g)
    _check_same_dim("g_q", g_q, "queue_g", queue_g)
    if not 1 <= k <= queue_g.shape[0]:
        raise ValueError(f"k={k} must be in [1, queue size {queue_g.shape[0]}]")
    with _float32(g_q):
        sim = F.normalize(g_q.float(), dim=1) @ F.normalize(queue_g.float(), dim=1).t()  # (B, K)
        return sim.topk(k, dim=1).indices  # (B, k)


@torch.no_grad()
def mls_pseudo_labels(g_q: Tensor, queue_g: Tensor, k: int) -> Tensor:
    """MLS pseudo-labels ``y = IsTopk(ĝ_q · Q̂_gᵀ, k)`` (MLS Eq. 7).

    Args:
        g_q: backbone features of the queries (B, Dg).
        queue_g: backbone-feature queue Q_g (K, Dg).
        k: number of positives per row.

    Returns:
        Float tensor (B, K) with exactly ``k`` ones per row, at the ``k`` entries of the
        queue most similar (cosine) to each query; no gradient.

    Example:
        >>> g = torch.tensor([[1.0, 0.0]])
        >>> Q = torch.tensor([[1.0, 0.1], [0.0, 1.0], [0.9, 0.0], [-1.0, 0.0]])
        >>> mls_pseudo_labels(g, Q, k=2)
        tensor([[1., 0., 1., 0.]])
    """
    idx = mls_topk(g_q, queue_g, k)
    return torch.zeros(g_q.shape[0], queue_g.shape[0], device=g_q.device).scatter_(1, idx, 1.0)


def _queue_logits(z_q: Tensor, queue_z: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """Check (B, Dz) queries, a (K, Dz) queue and (B, K) labels; return float32 ``ẑ_q·Q̂_zᵀ/τ``."""
    _check_2d("z_q", z_q)
    _check_2d("queue_z", queue_z)
    _check_same_dim("z_q", z_q, "queue_z", queue_z)
    if labels.shape != (z_q.shape[0], queue_z.shape[0]):
        raise ValueError(
            f"labels must have shape (B, K) = {(z_q.shape[0], queue_z.shape[0])}, got {tuple(labels.shape)}"
        )
    return F.normalize(z_q.float(), dim=1) @ F.normalize(queue_z.float(), dim=1).t() / temperature


def mls_bce(
    z_q: Tensor, queue_z: Tensor, labels: Tensor, temperature: float = 0.2, negatives: bool = True
) -> Tensor:
    """MLS binary cross-entropy over the queue (MLS Eq. 8-9; supp. Eq. 15 without negatives).

    ``p = ẑ_q · Q̂_zᵀ``;
    ``L = -(1/K) Σ_i [y_i log σ(p_i/τ) + (1 - y_i) log(1 - σ(p_i/τ))]``, mean over the batch.
    With ``negatives=False`` only the ``y_i log σ(p_i/τ)`` terms remain (BCE-pos).

    Args:
        z_q: query embeddings (B, Dz). queue_z: embedding queue Q_z (K, Dz).
        labels: multi-hot pseudo-labels (B, K).
    """
    with _float32(z_q):
        logits = _queue_logits(z_q, queue_z, labels, temperature)
        labels = labels.float()
        if negatives:
            # mean over B*K == mean over the batch of (1/K) Σ_i
            return F.binary_cross_entropy_with_logits(logits, labels)
        return -(labels * F.logsigmoid(logits)).sum(dim=1).div(queue_z.shape[0]).mean()


def knn_softmax(z_q: Tensor, queue_z: Tensor, labels: Tensor, temperature: float = 0.2) -> Tensor:
    """k-NN softmax ablation (MLS supp. Eq. 10): ``-(1/k) Σ_{i∈topk} log softmax(ẑ_q·Q̂_zᵀ/τ)_i``.

    ``k`` is the number of ones per row of ``labels`` (each row must have at least one).
    """
    with _float32(z_q):
        logits = _queue_logits(z_q, queue_z, labels, temperature)
        log_prob = F.log_softmax(logits, dim=1)
        labels = labels.float()
        return (-(labels * log_prob).sum(dim=1) / labels.sum(dim=1).clamp_min(1.0)).mean()


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """SimSiam's ``-cos(p, z)`` averaged over the batch. The caller decides on stop-grad."""
    _check_2d("p", p)
    _check_2d("z", z)
    if p.shape != z.shape:
        raise ValueError(f"p and z must have the same shape, got {tuple(p.shape)} and {tuple(z.shape)}")
    with _float32(p):
        return -F.cosine_similarity(p.float(), z.float(), dim=1).mean()


_FORMS = ("in", "out")


def image_aware_contrastive(
    features: Tensor,
    image_ids: Tensor,
    temperature: float = 0.3,
    base_temperature: float = 0.07,
    form: str = "in",
) -> Tensor:
    """Image-aware contrastive loss (BAM paper Eq. 1), a SupCon over views.

    ``s_ij = f̂_i·f̂_j / T``; positives ``P(i)`` are the other views with the same image id.

    - ``form="in"`` (the authors' code):
      ``L_i = -(T/T_b) · [log Σ_{P(i)} e^{s_ij} - log Σ_{j≠i} e^{s_ij}] / |P(i)|``
    - ``form="out"`` (SupCon L_out, the paper's "SUP" ablation):
      ``L_i = -(T/T_b) · (1/|P(i)|) Σ_{p∈P(i)} [s_ip - log Σ_{j≠i} e^{s_ij}]``

    The loss is the mean of ``L_i`` over the views that have at least one positive (a view
    without any has no term; when every view has one, as in BAM, this is the mean over all
    N views). Computed without host synchronisation.

    Args:
        features: view embeddings (N, D); L2-normalised here.
        image_ids: integer image id of each view (N,).
    """
    _check_2d("features", features)
    if form not in _FORMS:
        raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
    if image_ids.ndim != 1 or image_ids.shape[0] != features.shape[0]:
        raise ValueError(
            f"image_ids must have shape (N,) = ({features.shape[0]},), got {tuple(image_ids.shape)}"
        )
    if image_ids.is_floating_point():
        raise ValueError(f"image_ids must be an integer tensor, got dtype {image_ids.dtype}")
    with _float32(features):
        f = F.normalize(features.float(), dim=1)
        n = f.shape[0]
        sim = f @ f.t() / temperature  # (N, N)
        eye = torch.eye(n, dtype=torch.bool, device=f.device)
        pos = (image_ids[:, None] == image_ids[None, :]) & ~eye  # (N, N)
        n_pos = pos.sum(dim=1)  # (N,)
        has_pos = n_pos > 0
        # A large finite fill instead of -inf keeps every row (and its gradient) finite.
        fill = -1e9
        log_all = torch.logsumexp(sim.masked_fill(eye, fill), dim=1)  # (N,)
        if form == "in":
            log_pos = torch.logsumexp(sim.masked_fill(~pos, fill), dim=1)  # (N,)
            inner = (log_pos - log_all) / n_pos.clamp_min(1)
        else:
            inner = (sim * pos).sum(dim=1) / n_pos.clamp_min(1) - log_all
        per_view = -(temperature / base_temperature) * inner
        per_view = torch.where(has_pos, per_view, torch.zeros_like(per_view))
        return per_view.sum() / has_pos.sum().clamp_min(1)
