"""Block geometry of BAM and RandomResizedCrop sampling, vectorised over views."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["block_boxes", "check_overlap", "sample_resized_crops"]


def check_overlap(overlap: float) -> float:
    """Return ``overlap`` as a float if it lies in [0, 0.5), else raise ``ValueError``."""
    try:
        value = float(overlap)
    except (TypeError, ValueError):
        raise ValueError(f"overlap must be a number in [0, 0.5), got {overlap!r}") from None
    if not 0.0 <= value < 0.5:
        raise ValueError(f"overlap must be in [0, 0.5), got {overlap!r} (each block spans 0.5 + overlap of a side)")
    return value


def block_boxes(width: float, height: float, overlap: float = 0.2) -> list[tuple[float, float, float, float]]:
    """BAM's four overlapping blocks of a ``width`` x ``height`` image, as (x0, y0, x1, y1).

    With overlap c each block spans about ``0.5 + c`` of each side, around the integer half
    ``W // 2`` as in the authors' loader (``CropTransform``):
    B1 = (0, 0, W//2+cW, H//2+cH), B2 = (0, H//2-cH, W//2+cW, H),
    B3 = (W//2-cW, 0, W, H//2+cH), B4 = (W//2-cW, H//2-cH, W, H).
    The authors pass these float boxes to PIL's ``crop``, which rounds them; on odd sides
    an edge lands 1 px from where ``W/2`` would put it.

    Example:
        >>> block_boxes(100, 50, overlap=0.2)
        [(0.0, 0.0, 70.0, 35.0), (0.0, 15.0, 70.0, 50.0), (30.0, 0.0, 100.0, 35.0), (30.0, 15.0, 100.0, 50.0)]
        >>> block_boxes(81, 61, overlap=0.2)[0]  # W//2 = 40, H//2 = 30
        (0.0, 0.0, 56.2, 42.2)
    """
    c = check_overlap(overlap)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    w, h = float(width), float(height)
    half_w, half_h = float(int(width) // 2), float(int(height) // 2)
    lo_x, hi_x = half_w - c * w, half_w + c * w
    lo_y, hi_y = half_h - c * h, half_h + c * h
    return [(0.0, 0.0, hi_x, hi_y), (0.0, lo_y, hi_x, h), (lo_x, 0.0, w, hi_y), (lo_x, lo_y, w, h)]


def sample_resized_crops(
    regions: Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
    attempts: int = 10,
) -> Tensor:
    """torchvision's ``RandomResizedCrop.get_params`` for N regions at once.

    For each region (x0, y0, x1, y1) of size w x h: up to ``attempts`` draws of an area
    fraction in ``scale`` and a log-uniform aspect ratio in ``ratio``; the first crop that
    fits is placed uniformly at integer offsets; if none fits, the central crop with the
    ratio clamped to ``ratio``.

    Args:
        regions: (N, 4) float boxes in pixels.

    Returns:
        (N, 4) float64 crop boxes (x0, y0, x1, y1) in the same pixel frame as ``regions``.

    The random numbers come from ``generator`` (torch); the arithmetic runs in numpy
    float64: a worker draws a few views per image, where a torch op's call overhead would
    cost more than its work.
    """
    regions = regions.double().numpy()
    n = regions.shape[0]
    w = regions[:, 2] - regions[:, 0]
    h = regions[:, 3] - regions[:, 1]
    rand = torch.rand(n, 3 * attempts + 2, generator=generator, dtype=torch.float64).numpy()
    area = (w * h)[:, None] * (scale[0] + (scale[1] - scale[0]) * rand[:, :attempts])  # (N, A)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * rand[:, attempts : 2 * attempts])
    cw = np.round(np.sqrt(area * aspect))
    ch = np.round(np.sqrt(area / aspect))
    fits = (cw > 0) & (ch > 0) & (cw <= w[:, None]) & (ch <= h[:, None])
    first = fits.argmax(axis=1)[:, None]  # first attempt that fits
    cw = np.take_along_axis(cw, first, 1)[:, 0]
    ch = np.take_along_axis(ch, first, 1)[:, 0]
    ox = np.maximum(np.floor(rand[:, -2] * (w - cw + 1)), 0)
    oy = np.maximum(np.floor(rand[:, -1] * (h - ch + 1)), 0)

    # fallback: central crop with the aspect ratio clamped into `ratio`
    in_ratio = w / h
    fb_w = np.where(in_ratio < ratio[0], w, np.where(in_ratio > ratio[1], np.round(h * ratio[1]), w))
    fb_h = np.where(in_ratio < ratio[0], np.round(w / ratio[0]), h)
    fb_h = np.where(in_ratio > ratio[1], h, fb_h)
    ok = fits.any(axis=1)
    cw = np.where(ok, cw, fb_w)
    ch = np.where(ok, ch, fb_h)
    ox = np.where(ok, ox, np.floor((w - fb_w) / 2))
    oy = np.where(ok, oy, np.floor((h - fb_h) / 2))
    x0 = regions[:, 0] + ox
    y0 = regions[:, 1] + oy
    return torch.from_numpy(np.stack([x0, y0, x0 + cw, y0 + ch], axis=1))
