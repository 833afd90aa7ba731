"""Multi-label classification metrics: per-class AP, mAP, CP/CR/CF1, OP/OR/OF1."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["average_precision", "multilabel_metrics", "METRIC_NAMES"]

#: the seven multi-label metrics :func:`multilabel_metrics` reports, in the papers' table order
METRIC_NAMES = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")


def average_precision(scores: Tensor, targets: Tensor) -> Tensor:
    """Non-interpolated average precision of each column (C,); NaN where a class has no positive.

    ``AP = Σ_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first: tied
    scores enter together (the same as ``sklearn.metrics.average_precision_score``).

    Args:
        scores: (N, C) real scores (logits or probabilities). targets: (N, C) in {0, 1}, or -1
            for an entry to leave out of its class's AP (VOC's difficult-only labels).

    Example:
        >>> average_precision(torch.tensor([[0.9], [0.8], [0.1]]), torch.tensor([[1], [0], [1]]))
        tensor([0.8333], dtype=torch.float64)
        >>> average_precision(torch.tensor([[0.9], [0.8], [0.1]]), torch.tensor([[1], [-1], [1]]))  # the 0.8 ignored
        tensor([1.], dtype=torch.float64)
    """
    scores = torch.as_tensor(scores, dtype=torch.float64)
    targets = torch.as_tensor(targets, dtype=torch.float64)
    if scores.ndim == 1:
        scores, targets = scores[:, None], targets[:, None]
    if scores.shape != targets.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and targets {tuple(targets.shape)} must have the same shape")
    n, c = scores.shape
    ap = torch.full((c,), float("nan"), dtype=torch.float64)
    for k in range(c):
        keep = targets[:, k] >= 0
        s, order = scores[keep, k].sort(descending=True)
        t = targets[keep, k][order]
        n = t.shape[0]
        positives = t.sum()
        if positives == 0:
            continue
        tp = t.cumsum(0)
        # last index of every run of tied scores: a threshold takes the whole run
        last = torch.ones(n, dtype=torch.bool)
        last[:-1] = s[1:] != s[:-1]
        tp, seen = tp[last], torch.arange(1, n + 1, dtype=torch.float64)[last]
        precision = tp / seen
        recall = tp / positives
        recall_prev = torch.cat([torch.zeros(1, dtype=torch.float64), recall[:-1]])
        ap[k] = ((recall - recall_prev) * precision).sum()
    return ap


def multilabel_metrics(
    scores: Tensor,
    targets: Tensor,
    threshold: float = 0.5,
    *,
    apply_sigmoid: bool = True,
    top_k: int | None = None,
    top_k_threshold: bool = False,
) -> dict:
    """mAP, CP, CR, CF1, OP, OR, OF1 (percent) and the per-class AP.

    A label is predicted when ``sigmoid(score) >= threshold`` (``apply_sigmoid=False``
    thresholds the raw score, e.g. ``threshold=0.6`` on logits for parity with the BAM
    authors' script), or, with ``top_k``, for the k highest scores of each image; with
    ``top_k_threshold`` as well a top-k label must also pass the threshold (the authors'
    ``overall_topk``, which keeps the top-3 logits that are >= 0.6).
    mAP averages the classes that have positives; CP and CR average the per-class
    precision / recall over those same classes (a class never predicted has precision 0);
    CF1 and OF1 are the harmonic means of (CP, CR) and (OP, OR).

    Args:
        scores: (N, C). targets: (N, C) in {0, 1}; -1 marks an entry that counts neither as a
            positive nor as a negative (VOC's difficult-only labels): left out of the AP and of
            the precision / recall counts.

    Example:
        >>> m = multilabel_metrics(torch.tensor([[3.0, -3.0], [-3.0, 3.0]]), torch.tensor([[1, 0], [0, 1]]))
        >>> m["mAP"], m["CF1"], m["OF1"]
        (100.0, 100.0, 100.0)
    """
    scores = torch.as_tensor(scores).double().cpu()
    targets = torch.as_tensor(targets).double().cpu()
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"scores and targets must both be (N, C), got {tuple(scores.shape)} and {tuple(targets.shape)}")
    if not torch.all((targets == 0) | (targets == 1) | (targets == -1)):
        raise ValueError("targets must be 0 / 1 (or -1: ignored)")
    ap = average_precision(scores, targets)
    counted = (targets >= 0).double()
    targets = targets.clamp_min(0)
    has_pos = targets.sum(0) > 0
    if top_k is not None:
        if not 1 <= top_k <= scores.shape[1]:
            raise ValueError(f"top_k must be in [1, {scores.shape[1]}], got {top_k}")
        predicted = torch.zeros_like(scores)
        predicted.scatter_(1, scores.topk(top_k, dim=1).indices, 1.0)
        if top_k_threshold:
            predicted *= _passes(scores, threshold, apply_sigmoid)
    else:
        predicted = _passes(scores, threshold, apply_sigmoid)
    predicted = predicted * counted
    tp = (predicted * targets).sum(0)
    n_pred = predicted.sum(0)
    n_gt = targets.sum(0)
    cls_p = torch.where(n_pred > 0, tp / n_pred.clamp_min(1), torch.zeros_like(tp))[has_pos]
    cls_r = (tp / n_gt.clamp_min(1))[has_pos]

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    cp, cr = (cls_p.mean().item() if has_pos.any() else 0.0), (cls_r.mean().item() if has_pos.any() else 0.0)
    op = tp.sum().item() / n_pred.sum().item() if n_pred.sum() > 0 else 0.0
    orr = tp.sum().item() / n_gt.sum().item() if n_gt.sum() > 0 else 0.0
    return {
        "mAP": 100 * (ap[has_pos].mean().item() if has_pos.any() else float("nan")),
        "CP": 100 * cp,
        "CR": 100 * cr,
        "CF1": 100 * f1(cp, cr),
        "OP": 100 * op,
        "OR": 100 * orr,
        "OF1": 100 * f1(op, orr),
        "per_class_AP": [100 * v for v in ap.tolist()],
    }


def _passes(scores: Tensor, threshold: float, apply_sigmoid: bool) -> Tensor:
    """1.0 where the (sigmoid of the) score reaches the threshold."""
    return ((torch.sigmoid(scores) if apply_sigmoid else scores) >= threshold).double()
