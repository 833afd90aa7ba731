"""Block geometry of BAM and RandomResizedCrop sampling, vectorised over views."""
from __future__ import annotations

import math

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
        (N, 4) crop boxes (x0, y0, x1, y1) in the same pixel frame as ``regions``.
    """
    regions = regions.double()
    n = regions.shape[0]
    w = regions[:, 2] - regions[:, 0]
    h = regions[:, 3] - regions[:, 1]
    rand = torch.rand(n, 3 * attempts + 2, generator=generator, dtype=torch.float64)
    area = (w * h)[:, None] * (scale[0] + (scale[1] - scale[0]) * rand[:, :attempts])  # (N, A)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * rand[:, attempts : 2 * attempts])
    cw = torch.round(torch.sqrt(area * aspect))
    ch = torch.round(torch.sqrt(area / aspect))
    fits = (cw > 0) & (ch > 0) & (cw <= w[:, None]) & (ch <= h[:, None])
    first = fits.double().argmax(dim=1, keepdim=True)  # first attempt that fits
    cw = cw.gather(1, first).squeeze(1)
    ch = ch.gather(1, first).squeeze(1)
    ox = torch.floor(rand[:, -2] * (w - cw + 1)).clamp_min(0)
    oy = torch.floor(rand[:, -1] * (h - ch + 1)).clamp_min(0)

    # fallback: central crop with the aspect ratio clamped into `ratio`
    in_ratio = w / h
    fb_w = torch.where(in_ratio < ratio[0], w, torch.where(in_ratio > ratio[1], torch.round(h * ratio[1]), w))
    fb_h = torch.where(in_ratio < ratio[0], torch.round(w / ratio[0]), h)
    fb_h = torch.where(in_ratio > ratio[1], h, fb_h)
    ok = fits.any(dim=1)
    cw = torch.where(ok, cw, fb_w)
    ch = torch.where(ok, ch, fb_h)
    ox = torch.where(ok, ox, torch.floor((w - fb_w) / 2))
    oy = torch.where(ok, oy, torch.floor((h - fb_h) / 2))
    x0 = regions[:, 0] + ox
    y0 = regions[:, 1] + oy
    return torch.stack([x0, y0, x0 + cw, y0 + ch], dim=1)
