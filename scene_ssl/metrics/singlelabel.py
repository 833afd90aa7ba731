"""Single-label classification metrics: top-k accuracy and mean per-class accuracy."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["topk_accuracy", "mean_per_class_accuracy", "singlelabel_metrics"]


def _checked(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    scores, labels = torch.as_tensor(scores), torch.as_tensor(labels).long()
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (N, C) and labels (N,), got {tuple(scores.shape)} and {tuple(labels.shape)}")
    return scores, labels


def topk_accuracy(scores: Tensor, labels: Tensor, k: int = 1) -> float:
    """Percent of rows whose label is among the k highest scores (single-label data).

    Example:
        >>> topk_accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
        50.0
    """
    scores, labels = _checked(scores, labels)
    hit = (scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * hit.double().mean().item()


def mean_per_class_accuracy(scores: Tensor, labels: Tensor) -> float:
    """The top-1 accuracy of each class that has samples, averaged over those classes (percent):
    what Ericsson et al. report for Aircraft, Flowers and Pets.

    Example:
        >>> scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8]])
        >>> mean_per_class_accuracy(scores, torch.tensor([0, 0, 0, 1])), topk_accuracy(scores, torch.tensor([0, 0, 0, 1]))
        (100.0, 100.0)
        >>> mean_per_class_accuracy(scores, torch.tensor([0, 0, 1, 1]))  # class 0: 2/2, class 1: 1/2
        75.0
    """
    scores, labels = _checked(scores, labels)
    hit = (scores.argmax(dim=1) == labels).double()
    classes = labels.unique()
    return 100.0 * torch.stack([hit[labels == c].mean() for c in classes]).mean().item()


def singlelabel_metrics(scores: Tensor, labels: Tensor) -> dict[str, float]:
    """``top1``, ``top5`` (k capped at the classes) and ``mean_per_class`` accuracy, percent."""
    return {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, min(5, scores.shape[1])),
            "mean_per_class": mean_per_class_accuracy(scores, labels)}
