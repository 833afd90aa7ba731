"""Linear classifier on frozen features: the authors' GAMP probe protocol."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..metrics import multilabel_metrics
from ..schedule import cosine_lr

__all__ = ["fit_linear_head", "train_linear_head", "new_linear_head", "probe_lr", "probe_metrics"]


def probe_lr(batch_size: int, lr: float | None = None) -> float:
    """``lr`` if given, else the authors' rule ``10 x batch / 256``."""
    return 10.0 * batch_size / 256 if lr is None else lr


def new_linear_head(in_dim: int, num_classes: int, generator: torch.Generator | None = None) -> nn.Linear:
    """The authors' probe head: weight ~ N(0, 0.01), bias 0."""
    head = nn.Linear(in_dim, num_classes)
    nn.init.normal_(head.weight, std=0.01, generator=generator)
    nn.init.zeros_(head.bias)
    return head


def train_linear_head(
    head: nn.Linear,
    epoch_batches: Callable[[int], Iterable[tuple[Tensor, Tensor]]],
    steps_per_epoch: int,
    *,
    epochs: int = 100,
    lr: float = 2.5,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    single_label: bool = False,
    desc: str | None = None,
) -> nn.Linear:
    """SGD with a cosine schedule over ``epoch_batches(epoch)`` -> (features (B, C), targets (B, K)).
    ``desc`` shows a progress bar over the epochs with that label."""
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    total, step = epochs * steps_per_epoch, 0
    for epoch in tqdm(range(epochs), desc=desc, disable=desc is None, leave=False):
        for features, targets in epoch_batches(epoch):
            logits = head(features)
            if single_label:
                loss = F.cross_entropy(logits, targets.argmax(dim=1))
            else:
                loss = _bce(logits, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, lr)
    return head


def _bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy over the entries that count: a -1 target (VOC's difficult-only
    labels) is left out, as the VOC classification protocol does."""
    if (targets < 0).any():
        counted = targets >= 0
        return F.binary_cross_entropy_with_logits(logits[counted], targets[counted])
    return F.binary_cross_entropy_with_logits(logits, targets)


def fit_linear_head(
    features: Tensor,
    targets: Tensor,
    *,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float | None = None,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    single_label: bool = False,
    seed: int = 0,
    desc: str | None = None,
) -> nn.Linear:
    """Train ``Linear(C, K)`` on cached pooled features (N, C).

    Defaults are the BAM authors' linear-classification script: weight ~ N(0, 0.01), bias 0,
    SGD momentum 0.9, weight decay 0, ``lr = 10 x batch / 256`` with a cosine schedule,
    100 epochs, batch 64, binary cross-entropy (``single_label``: cross-entropy).
    """
    if features.ndim != 2 or targets.ndim != 2 or features.shape[0] != targets.shape[0]:
        raise ValueError(f"features (N, C) and targets (N, K) expected, got {tuple(features.shape)} and {tuple(targets.shape)}")
    g = torch.Generator().manual_seed(seed)
    head = new_linear_head(features.shape[1], targets.shape[1], g)
    n = features.shape[0]
    steps_per_epoch = max(1, n // batch_size)

    def epoch_batches(epoch: int):
        order = torch.randperm(n, generator=g)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            yield features[idx], targets[idx]

    return train_linear_head(head, epoch_batches, steps_per_epoch, epochs=epochs,
                             lr=probe_lr(batch_size, lr), weight_decay=weight_decay,
                             momentum=momentum, single_label=single_label, desc=desc)


@torch.no_grad()
def probe_metrics(head: nn.Linear, features: Tensor, targets: Tensor, **metric_kwargs) -> dict:
    """:func:`~scene_ssl.metrics.multilabel_metrics` of the head's logits."""
    return multilabel_metrics(head(features), targets, **metric_kwargs)
