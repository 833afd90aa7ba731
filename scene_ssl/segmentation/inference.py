"""Logits of a whole image: at once, or mmseg's sliding window (overlapping crops averaged)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["slide_windows", "slide_logits", "image_logits"]


def slide_windows(height: int, width: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of mmseg's sliding windows: a grid every ``stride``, the last
    window of each row and column moved back to end at the image's edge; one window of the
    whole image where it is smaller than the crop.

    Example:
        >>> len(slide_windows(1024, 2048, (769, 769), (513, 513)))  # Cityscapes: 2 x 4
        8
        >>> slide_windows(10, 6, (8, 8), (4, 4))
        [(0, 0, 8, 6), (2, 0, 10, 6)]
    """
    rows = max(height - crop[0] + stride[0] - 1, 0) // stride[0] + 1
    cols = max(width - crop[1] + stride[1] - 1, 0) // stride[1] + 1
    windows = []
    for r in range(rows):
        for c in range(cols):
            bottom, right = min(r * stride[0] + crop[0], height), min(c * stride[1] + crop[1], width)
            windows.append((max(bottom - crop[0], 0), max(right - crop[1], 0), bottom, right))
    return windows


def slide_logits(logits: Callable[[Tensor], Tensor], image: Tensor, num_classes: int, crop: tuple[int, int],
                 stride: tuple[int, int]) -> Tensor:
    """(B, C, H, W) logits of (B, 3, H, W) ``image``: ``logits(window)`` (at the window's size)
    of every :func:`slide_windows` window, averaged where windows overlap."""
    batch, _, height, width = image.shape
    total = image.new_zeros(batch, num_classes, height, width)
    count = image.new_zeros(1, 1, height, width)
    for top, left, bottom, right in slide_windows(height, width, crop, stride):
        total[:, :, top:bottom, left:right] += logits(image[:, :, top:bottom, left:right]).float()
        count[:, :, top:bottom, left:right] += 1
    return total / count


def image_logits(logits: Callable[[Tensor], Tensor], image: Tensor, num_classes: int, size: tuple[int, int], *,
                 mode: str = "whole", crop: tuple[int, int] = (769, 769), stride: tuple[int, int] = (513, 513),
                 align_corners: bool = False) -> Tensor:
    """Logits of ``image`` (``mode`` whole | slide) resized to ``size`` (the label's (H, W))."""
    out = slide_logits(logits, image, num_classes, crop, stride) if mode == "slide" else logits(image).float()
    if out.shape[-2:] != torch.Size(size):
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=align_corners)
    return out
