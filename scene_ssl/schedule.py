"""Learning-rate and EMA-momentum schedules as plain functions of the step."""
from __future__ import annotations

import math

__all__ = ["cosine_lr", "cosine_momentum"]


def cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0) -> float:
    """Linear warm-up for ``warmup_steps``, then half a cosine from ``base_lr`` to 0.

    Example:
        >>> [round(cosine_lr(s, 10, 1.0), 3) for s in (0, 5, 10)]
        [1.0, 0.5, 0.0]
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def cosine_momentum(step: int, total_steps: int, base_momentum: float) -> float:
    """BYOL's EMA schedule: ``1 - (1 - m) (cos(π t / T) + 1) / 2``, from m up to 1.

    Example:
        >>> cosine_momentum(0, 10, 0.99), cosine_momentum(10, 10, 0.99)
        (0.99, 1.0)
    """
    progress = min(1.0, step / max(1, total_steps))
    return 1.0 - (1.0 - base_momentum) * (math.cos(math.pi * progress) + 1.0) / 2.0
