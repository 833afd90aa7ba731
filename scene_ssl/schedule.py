"""Learning-rate and EMA-momentum schedules as plain functions of the step."""
from __future__ import annotations

import math
import re

__all__ = ["cosine_lr", "cosine_momentum", "schedule_iterations", "step_lr_factor", "poly_lr_factor"]


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


#: Detectron2's 1x: 90k iterations at 16 images per batch; 2x, 3x, ... are multiples
BASE_ITERATIONS, BASE_BATCH = 90_000, 16


def schedule_iterations(schedule: str, total_batch: int) -> int:
    """Iterations of a schedule at ``total_batch`` images per step: ``"1x"`` = 90k at batch 16,
    scaled inversely with the batch (the linear scaling rule keeps the images seen); a plain
    number is that many iterations.

    ``"24000@16"`` is 24k iterations at 16 images, scaled the same way (MoCo's VOC schedule).

    Example:
        >>> schedule_iterations("1x", 16), schedule_iterations("2x", 64), schedule_iterations("300", 8)
        (90000, 45000, 300)
        >>> schedule_iterations("24000@16", 8)
        48000
    """
    match = re.fullmatch(r"(\d+(?:\.\d+)?)x", schedule.strip())
    if match:
        return max(1, round(float(match.group(1)) * BASE_ITERATIONS * BASE_BATCH / total_batch))
    match = re.fullmatch(r"(\d+)@(\d+)", schedule.strip())
    if match:
        return max(1, round(int(match.group(1)) * int(match.group(2)) / total_batch))
    if schedule.strip().isdigit() and int(schedule) > 0:
        return int(schedule)
    raise ValueError(f"schedule must be like 1x / 2x, 24000@16 or a number of iterations, got {schedule!r}")


def step_lr_factor(it: int, total: int, warmup: int, steps: tuple[float, ...] = (2 / 3, 8 / 9)) -> float:
    """Linear warm-up from 0.001, then x0.1 at each fraction ``steps`` of ``total`` iterations
    (Detectron2's 1x: 60k and 80k of 90k).

    Example:
        >>> [step_lr_factor(i, 90, 10) for i in (0, 10, 60, 80)]
        [0.001, 1.0, 0.1, 0.010000000000000002]
    """
    factor = 0.1 ** sum(it >= round(total * f) for f in steps)
    if it < warmup:
        factor *= 0.001 + (1 - 0.001) * it / warmup
    return factor


def poly_lr_factor(it: int, total: int, power: float = 0.9, min_ratio: float = 0.0) -> float:
    """mmseg's poly schedule as a factor of the base lr: ``(1 - it / total) ** power``, from 1
    down to ``min_ratio`` (min_lr / lr): ``lr = (base - min) (1 - it / total) ** power + min``.

    Example:
        >>> [round(poly_lr_factor(i, 10, 1.0, 0.01), 3) for i in (0, 5, 10)]
        [1.0, 0.505, 0.01]
    """
    return (1 - min_ratio) * (1 - min(it, total) / total) ** power + min_ratio
